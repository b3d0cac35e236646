# The soak's samples as one PNG: gnuplot -e "dir='DIR'; nproc=COLUMNS_OF_RSS_CSV" plot.gp (reads DIR/soak.csv, DIR/rss.csv).
set datafile separator ','
set terminal pngcairo size 1600,1200 font 'sans,10'
set output dir.'/soak.png'
set termoption noenhanced
set key top left
set grid
set xlabel 'minute'


set multiplot layout 3,2 title 'pg_consistency soak (one sample a minute)'

set title 'private memory (RssAnon) of each pg_consistency process'
set ylabel 'MB'
set yrange [0:*]
plot for [i=2:nproc] dir.'/rss.csv' using 1:i with linespoints pt 7 ps 0.4 title columnhead(i)

set title 'consistency schema size (tables + indexes)'
set ylabel 'MB'
plot dir.'/soak.csv' using 1:'schema_mb' with linespoints pt 7 ps 0.4 title 'all', \
     '' using 1:'events_mb' with linespoints pt 7 ps 0.4 title 'events', \
     '' using 1:'sagas_mb' with linespoints pt 7 ps 0.4 title 'saga_instances', \
     '' using 1:'outbox_mb' with linespoints pt 7 ps 0.4 title 'outbox', \
     '' using 1:'dedupe_mb' with linespoints pt 7 ps 0.4 title 'consumer_dedupe', \
     '' using 1:'relay_batches_mb' with linespoints pt 7 ps 0.4 title 'relay_batches'

set title 'backlogs'
set ylabel 'rows / events / messages'
plot dir.'/soak.csv' using 1:'outbox_pending' with linespoints pt 7 ps 0.4 title 'outbox pending', \
     '' using 1:'subscription_lag' with linespoints pt 7 ps 0.4 title 'subscription lag', \
     '' using 1:'consumer_lag' with linespoints pt 7 ps 0.4 title 'consumer lag', \
     '' using 1:'dead_letters' with linespoints pt 7 ps 0.4 title 'dead letters'

set title 'throughput'
set key center left
set ylabel 'per minute'
plot dir.'/soak.csv' using 1:'appends_per_min' with linespoints pt 7 ps 0.4 title 'appends', \
     '' using 1:'projected_per_min' with linespoints pt 7 ps 0.4 title 'projected (subscription)', \
     '' using 1:'publishes_per_min' with linespoints pt 7 ps 0.4 title 'publishes', \
     '' using 1:'delivered_per_min' with linespoints pt 7 ps 0.4 title 'delivered (relay)', \
     '' using 1:'inbox_per_min' with linespoints pt 7 ps 0.4 title 'consumed (inbox)', \
     '' using 1:'sagas_per_min' with linespoints pt 7 ps 0.4 title 'sagas started', \
     '' using 1:'twopc_per_min' with linespoints pt 7 ps 0.4 title '2PC commits'

set title 'sagas by status'
set key top left
set ylabel 'sagas'
plot dir.'/soak.csv' using 1:'sagas_completed' with linespoints pt 7 ps 0.4 title 'completed', \
     '' using 1:'sagas_compensated' with linespoints pt 7 ps 0.4 title 'compensated', \
     '' using 1:'sagas_running' with linespoints pt 7 ps 0.4 title 'running', \
     '' using 1:'sagas_compensating' with linespoints pt 7 ps 0.4 title 'compensating', \
     '' using 1:'sagas_failed' with linespoints pt 7 ps 0.4 title 'failed/aborted'

set title 'machine load (1-minute load average, shared machine)'
set ylabel 'load'
plot dir.'/soak.csv' using 1:'load1' with linespoints pt 7 ps 0.4 title 'load1'
unset multiplot
