SELECT * FROM consistency.read_stream('read-1', 1, 1000);
