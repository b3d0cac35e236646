# The documentation's SQL examples as tests (test/t/810_docs_examples.t): fenced ```sql
# blocks of README.md and docs/*.md, their markers, and a run of one page's blocks in one
# psql session whose errors are matched to the blocks. The convention is in
# docs/development.md, "Documentation that runs".
package PgcDocs;

use strict;
use warnings;
use utf8;
use Encode qw(decode);
use IPC::Run;
use Exporter 'import';
our @EXPORT_OK = qw(doc_blocks run_page function_table);

# Blocks of one Markdown file: a list of { lang, line, text, skip (reason or undef),
# errors => [ { state, text } ] }. A block is fenced by ``` lines; its language is the
# first word after the opening fence.
sub doc_blocks {
  my ($file) = @_;
  open my $fh, '<:encoding(UTF-8)', $file or die "$file: $!";
  my @lines = <$fh>;
  close $fh;
  my (@blocks, $cur);
  for my $i (0 .. $#lines) {
    my $l = $lines[$i];
    if (!$cur) {
      if ($l =~ /^```\s*(\S*)/) {
        $cur = { lang => lc $1, line => $i + 1, text => '' };
      }
      next;
    }
    if ($l =~ /^```\s*$/) {
      push @blocks, _markers($cur);
      undef $cur;
      next;
    }
    $cur->{text} .= $l;
  }
  die "$file: a fence opened at line $cur->{line} is never closed\n" if $cur;
  return @blocks;
}

# Reads a block's markers: "-- not run: why" as its first line, "-- ERROR:  text (SQLSTATE XXXXX)"
# after each statement that must fail.
sub _markers {
  my ($b) = @_;
  my ($first) = grep { /\S/ } split /\n/, $b->{text};
  $b->{skip} = $1 if defined $first && $first =~ /^\s*--\s*not run:\s*(.+?)\s*$/i;
  $b->{errors} = [];
  for my $l (split /\n/, $b->{text}) {
    if ($l =~ /--\s*ERROR:\s+(.*?)\s*\(SQLSTATE ([0-9A-Z]{5})\)\s*$/) {
      push @{ $b->{errors} }, { text => $1, state => $2 };
    } elsif ($l =~ /--\s*ERROR:/) {
      die "block at line $b->{line}: an expected error must end with (SQLSTATE XXXXX): $l\n";
    }
  }
  return $b;
}

# True when an error message matches the documented text: the parts between "…" appear in
# that order (a documented text of "…" alone matches anything).
sub _message_matches {
  my ($doc, $got) = @_;
  my $pos = 0;
  for my $part (grep { length } map { s/^\s+|\s+$//gr } split /…|\.\.\./, $doc) {
    my $at = index($got, $part, $pos);
    return 0 if $at < 0;
    $pos = $at + length $part;
  }
  return 1;
}

# Runs the runnable SQL blocks of one page, in order, in one psql session on $connstr (as a
# reader pasting them into psql would). Returns one result per block:
# { block, ok, why, errors => [ "SQLSTATE: message" ] }.
sub run_page {
  my ($connstr, $blocks, %opts) = @_;
  my @run = grep { $_->{lang} eq 'sql' && !defined $_->{skip} } @$blocks;
  return () unless @run;
  # Errors go to stderr, and so does \warn: the markers split stderr by block, in order.
  my $script = "\\set ON_ERROR_STOP 0\n\\set VERBOSITY verbose\n\\set SHOW_CONTEXT never\n";
  for my $i (0 .. $#run) {
    $script .= "\\warn '\@\@block $i\@\@'\n" . $run[$i]{text};
    # A block that ends inside a statement would swallow the next marker: ";" is harmless.
    $script .= "\n";
  }
  $script .= "\\warn '\@\@end\@\@'\n";
  my ($out, $err) = ('', '');
  my $ok = eval {
    IPC::Run::run(['psql', '-X', '-q', '-d', $connstr, '-f', '-'], '<', \$script, '>', \$out, '2>', \$err,
                  IPC::Run::timeout($opts{timeout} // 300));
    1;
  };
  my $died = $ok ? '' : "psql did not finish: $@";
  $err = decode('UTF-8', $err);
  my (%errs, %other, %seen);
  my $cur = -1;
  my $ended = 0;
  for my $l (split /\n/, $err) {
    if ($l =~ /^\@\@block (\d+)\@\@$/) { $cur = $1; $seen{$cur} = 1; next; }
    if ($l =~ /^\@\@end\@\@$/) { $ended = 1; next; }
    if ($l =~ /(?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5}): (.*)$/) {
      push @{ $errs{$cur} }, { state => $1, text => $2 };
    } elsif ($l =~ /server closed the connection|connection to server .* failed|could not connect/) {
      push @{ $other{$cur} }, $l;
    }
  }
  my @results;
  for my $i (0 .. $#run) {
    my $b = $run[$i];
    my @got = @{ $errs{$i} // [] };
    my @want = @{ $b->{errors} };
    my $why = '';
    if (!$seen{$i}) {
      $why = 'never ran: ' . ($died || join('; ', @{ $other{-1} // [] }) || 'the session ended before it');
    } elsif (@{ $other{$i} // [] }) {
      $why = join('; ', @{ $other{$i} });
    } elsif (@got != @want) {
      $why = sprintf('%d error(s) expected, %d raised', scalar @want, scalar @got);
    } else {
      for my $k (0 .. $#want) {
        if ($got[$k]{state} ne $want[$k]{state}) {
          $why = "error " . ($k + 1) . ": SQLSTATE $got[$k]{state}, documented $want[$k]{state}";
          last;
        }
        if (!_message_matches($want[$k]{text}, $got[$k]{text})) {
          $why = "error " . ($k + 1) . ": message '$got[$k]{text}' differs from the documented '$want[$k]{text}'";
          last;
        }
      }
    }
    $why ||= $died if $i == $#run && $died;
    $why ||= 'the session ended before the page did' if $i == $#run && !$ended;
    push @results, { block => $b, ok => !$why, why => $why, output => $i == 0 ? decode('UTF-8', $out) : undef,
                     errors => [ map { "$_->{state}: $_->{text}" } @got ] };
  }
  return @results;
}

# Rows of the reference table of functions: `consistency.f(types)` in the first column, the
# role in the second. Returns { signature => role }.
sub function_table {
  my ($file) = @_;
  open my $fh, '<:encoding(UTF-8)', $file or die "$file: $!";
  my %rows;
  while (my $l = <$fh>) {
    next unless $l =~ /^\|\s*`(consistency\.[a-z_0-9]+\([^`]*\))`\s*\|\s*`?([a-z_ ]+?)`?\s*\|/;
    my ($sig, $role) = ($1, $2);
    $sig =~ s/\s+//g;
    $rows{$sig} = $role;
  }
  close $fh;
  return \%rows;
}

1;
