#!/usr/bin/perl
# Per-key ordered delivery across ebd processes ("ordering_key",
# "partitions"): nginx writes an ordered (rule, target)'s entry to
# eb:{BUS}:target:T:p:N (N = FNV-1a 32 of the key mod partitions, the key
# in the field "key"); each partition is read by one ebd at a time under
# a lease eb:{BUS}:ord:T:p:N (the holder's consumer name, 5 s), at most
# ceil(partitions / live processes) each.
#
#   1. nginx -t and ebd -t refuse a bad ordering_key (not "$..." nor
#      "partitionkey", a JSONPath that does not parse; on a target and on
#      a rule's target entry), partitions 0 and 257, and partitions
#      without ordering_key, naming the key; good ones pass.
#   2. The acceptance test: three ebd processes, 1,000 keys x 20 events
#      accepted in seq order, a peer that answers 10 % 503 at random
#      (and some a few ms late); kill -9 of the ebd holding the most
#      partitions at about a third delivered, the survivors take its
#      partitions (within the 5 s lease), it comes back under its name
#      and gets its share back while events still come (a round every
#      0.7 s). Every key's 2xx deliveries, repeats removed, are exactly
#      1..20; no event went before its predecessor was delivered; all
#      three held partitions, balanced (at most 6 of 16 each), as their
#      ebd_ordered_partitions metric says too. A third ebd stopped
#      (SIGTERM): the other two take all its partitions.
#   3. fault_tolerance NONE without ordering_key, two ebd processes: 200
#      events through one partition, one request at a time, exactly in
#      order through random 503s.
#   In 3 to 6 (no crash), no event is delivered again after a later one
#   of its key: repeats are reported (diag), such a step back fails.
#   4. A key whose events always fail (500, attempts 2) holds only
#      itself: the other keys, in its partition too, are all delivered in
#      order while its first event is still being retried; its events are
#      dead-lettered in order, one after the other.
#   5. ordering_key "partitionkey": binary-mode events with ce-partitionkey
#      keep their order per key; the entries carry the key, in the
#      partition of its hash.
#   6. A rule's target entry's own ordering_key overrides the target's
#      and makes an unordered target ordered: the entries' key and
#      partition (string, number, missing, null, UTF-8), and delivery in
#      order per that key.
#   7. The console's overview sums a target's backlog over its stream and
#      its partitions.
#   8. SIGHUP of both ebd while 100 keys x 10 events are delivered: in
#      order across the reloads, nothing lost.
#
# Sections 5 and 6 look at the entries nginx writes in a bus "insp" that
# only nginx's copy of the configuration has: no ebd reads (and trims)
# them.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Encode ();
use File::Temp ();
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);
use EBTest::Peer;

# --- the peer -------------------------------------------------------------------
#
# EBTest::Peer, answering the paths /o/... itself (in the peer's process):
# a share of them 503 at random, some a few ms late, key "bad" always 500;
# each answer is noted as one line "arrival path status delay key seq" in
# the file "rec" (the peer's own log keeps no body: 25,000 requests).
# The key is the event's data.other, else data.key, else its partitionkey.

package OrderPeer;
use parent -norequire, 'EBTest::Peer';

my %FAIL  = ('/o/keyed' => 0.10, '/o/none' => 0.10, '/o/grp' => 0,
             '/o/pk' => 0.10, '/o/ovr' => 0.10, '/o/plain' => 0.10);
my %DELAY = ('/o/keyed' => 0.005, '/o/none' => 0.003);

sub _answer {
    my ($self, $st, $req) = @_;
    my $path = $req->{path};
    return $self->SUPER::_answer($st, $req) unless exists $FAIL{$path};
    my $body = $req->{body} // '';
    my ($key) = $body =~ /"other":"([^"]*)"/;
    ($key) = $body =~ /"key":"([^"]*)"/ unless defined $key;
    ($key) = $body =~ /"partitionkey":"([^"]*)"/ unless defined $key;
    my ($seq) = $body =~ /"seq":(\d+)/;
    $key = '-' unless defined $key && length $key;
    my $status = $key eq 'bad' ? 500 : rand() < $FAIL{$path} ? 503 : 200;
    my $delay = $DELAY{$path} && rand() < 0.3 ? rand($DELAY{$path}) : 0;
    $req->{status} = $status;
    unless ($self->{rec_fh}) {
        open $self->{rec_fh}, '>>', $self->{rec} or die "$self->{rec}: $!";
        $self->{rec_fh}->autoflush(1);
    }
    printf {$self->{rec_fh}} "%.6f %s %d %.6f %s %d\n",
        $req->{time}, $path, $status, $delay, $key, $seq // 0;
    $req->{body} = '';
    $req->{headers} = {};
    return (EBTest::Peer::_response($status), $delay);
}

package main;

my $JSON = JSON::PP->new->utf8->canonical;
my $EBD = EBTest::Ebd::binary();
my $dir = File::Temp::tempdir('eb-091-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $T_START = time;

# FNV-1a, 32 bits, of a key's bytes
sub fnv1a {
    my $h = 2166136261;
    for my $c (unpack 'C*', $_[0]) {
        $h ^= $c;
        $h = ($h * 16777619) % 4294967296;
    }
    return $h;
}
is(sprintf('%08x', fnv1a('foobar')), 'bf9cf968', 'FNV-1a 32 of "foobar" (the reference value)');

sub ebd_t {
    my ($file) = @_;
    my $out = `'$EBD' -t -c '$file' 2>&1`;
    return ($? >> 8, $out);
}

# --- 1. validation -------------------------------------------------------------

{
    my $vngx = EBTest::Nginx->new(http => <<'EOF');
    eventbridge_redis 127.0.0.1:1;
    eventbridge_config %%DIR%%/v.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /v { eventbridge_put_events bus=v; }
    }
EOF
    my $check = sub {
        my ($name, $targets, $entry, $bad_re) = @_;
        my $cfg = { targets => { t => { type => 'http', url => 'http://127.0.0.1:9/x',
                                        %$targets } },
                    buses => { v => { rules => { all => {
                        pattern => { source => [ { prefix => '' } ] },
                        targets => [ { target => 't', %$entry } ] } } } } };
        my $text = $JSON->encode($cfg);
        write_file($vngx->dir . '/v.json', $text);
        write_file("$dir/v.json", $text);
        my ($nrc, $nout) = $vngx->test_conf;
        my ($erc, $eout) = ebd_t("$dir/v.json");
        if (!$bad_re) {
            is($nrc, 0, "nginx -t accepts $name") or diag $nout;
            is($erc, 0, "ebd -t accepts $name") or diag $eout;
            return;
        }
        isnt($nrc, 0, "nginx -t refuses $name");
        like($nout, qr/\[emerg\].*$bad_re/, "nginx -t: $name: the message names it") or diag $nout;
        is($erc, 1, "ebd -t refuses $name (exit 1)");
        like($eout, $bad_re, "ebd -t: $name: the message names it") or diag $eout;
    };
    my $tk = qr/targets\.t\.ordering_key/;
    my $tp = qr/targets\.t\.partitions/;
    $check->('ordering_key "data.x"', { ordering_key => 'data.x' }, {}, $tk);
    $check->('ordering_key "$.["', { ordering_key => '$.[' }, {}, $tk);
    $check->('partitions 0', { ordering_key => '$.data.k', partitions => 0 }, {}, $tp);
    $check->('partitions 257', { ordering_key => '$.data.k', partitions => 257 }, {}, $tp);
    $check->('partitions without ordering_key', { partitions => 4 }, {}, $tp);
    $check->('partitions without ordering_key on a NONE target',
             { partitions => 4, fault_tolerance => 'NONE' }, {}, $tp);
    $check->('a rule\'s target entry with ordering_key "data.x"', {},
             { ordering_key => 'data.x' },
             qr/buses\.v\.rules\.all\.targets\[0\]\.ordering_key/);
    $check->('a rule\'s target entry with ordering_key "$.["', {},
             { ordering_key => '$.[' },
             qr/buses\.v\.rules\.all\.targets\[0\]\.ordering_key/);
    # the limits themselves, and every good form
    $check->('ordering_key "partitionkey", partitions 256',
             { ordering_key => 'partitionkey', partitions => 256 }, {}, undef);
    $check->('ordering_key "$.data.k", partitions 1',
             { ordering_key => '$.data.k', partitions => 1 }, {}, undef);
    $check->('a rule\'s target entry\'s ordering_key on an unordered target', {},
             { ordering_key => '$.data.other' }, undef);
    $check->('fault_tolerance NONE without ordering_key', { fault_tolerance => 'NONE' },
             {}, undef);
}

# --- the servers ---------------------------------------------------------------

my $peer = OrderPeer->start(rec => "$dir/rec.txt");
my $redis = EBTest::Redis->start;

my $fast = { strategy => 'exponential', attempts => 100,
             interval => '20ms', max_interval => '200ms' };
my $all = { source => [ { prefix => '' } ] };
my $cfg = {
    targets => {
        http  => { type => 'http', url => $peer->url('/o/keyed'),
                   ordering_key => '$.data.key', partitions => 16,
                   concurrency => 32, retry => $fast },
        seq   => { type => 'http', url => $peer->url('/o/none'),
                   fault_tolerance => 'NONE', retry => $fast },
        grp   => { type => 'http', url => $peer->url('/o/grp'),
                   ordering_key => '$.data.key', partitions => 4,
                   retry => { strategy => 'backoff', attempts => 2,
                              interval => '400ms', max_interval => '400ms' } },
        pk    => { type => 'http', url => $peer->url('/o/pk'),
                   ordering_key => 'partitionkey', partitions => 8, retry => $fast },
        okd   => { type => 'http', url => $peer->url('/o/ovr'),
                   ordering_key => '$.data.key', partitions => 8, retry => $fast },
        plain => { type => 'http', url => $peer->url('/o/plain'), retry => $fast },
    },
    buses => {
        keyed => { rules => { all => { pattern => $all, targets => [ { target => 'http' } ] } } },
        none  => { rules => { all => { pattern => $all, targets => [ { target => 'seq' } ] } } },
        grp   => { rules => { all => { pattern => $all, targets => [ { target => 'grp' } ] } } },
        pk    => { rules => { all => { pattern => $all, targets => [ { target => 'pk' } ] } } },
        ovr   => { rules => {
            o1 => { pattern => $all,
                    targets => [ { target => 'okd', ordering_key => '$.data.other' } ] },
            o2 => { pattern => $all,
                    targets => [ { target => 'plain', ordering_key => '$.data.other' } ] },
        } },
    },
};
# nginx's copy has one bus more, "insp", that no ebd reads
my $ncfg = $JSON->decode($JSON->encode($cfg));
my $ovr = { data => { kind => [ 'ovr' ] } };
$ncfg->{buses}{insp} = { rules => {
    ovr_okd   => { pattern => $ovr, targets => [ { target => 'okd', ordering_key => '$.data.other' } ] },
    ovr_plain => { pattern => $ovr, targets => [ { target => 'plain', ordering_key => '$.data.other' } ] },
    own_okd   => { pattern => $ovr, targets => [ { target => 'okd' } ] },
    unord     => { pattern => $ovr, targets => [ { target => 'plain' } ] },
    pk        => { pattern => { type => [ 't.pk' ] }, targets => [ { target => 'pk' } ] },
} };
my $ebd_cfg = "$dir/buses.json";
write_file($ebd_cfg, $JSON->encode($cfg));

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /keyed { eventbridge_put_events bus=keyed; eventbridge_max_batch 1000; }
        location /none  { eventbridge_put_events bus=none; }
        location /grp   { eventbridge_put_events bus=grp; }
        location /pk    { eventbridge_put_events bus=pk; }
        location /ovr   { eventbridge_put_events bus=ovr; }
        location /insp  { eventbridge_put_events bus=insp; }
        location /console/ { eventbridge_console; }
    }
EOF
write_file($ngx->dir . '/buses.json', $JSON->encode($ncfg));
$ngx->start;

my (%ebd, %mport);
sub start_ebd {
    my ($name) = @_;
    $mport{$name} = EBTest::free_port();
    $ebd{$name} = EBTest::Ebd->start(config => $ebd_cfg, redis => $redis, name => $name,
                                     args => [ '-w', '1', '--claim-idle', '3s',
                                               '--metrics', "127.0.0.1:$mport{$name}" ]);
    return $ebd{$name};
}

# { bus/target label => partitions } of one ebd's metrics, undef when
# they do not answer
sub ordered_partitions {
    my ($name) = @_;
    my $r = EBTest::http(port => $mport{$name}, method => 'GET', path => '/metrics',
                         timeout => 3);
    return undef unless ($r->{status} // 0) == 200;
    my %m;
    while ($r->{body} =~ /^ebd_ordered_partitions\{([^}]*)\}\s+(\S+)/mg) {
        my ($l, $v) = ($1, $2);
        my ($bus) = $l =~ /bus="([^"]*)"/;
        my ($t) = $l =~ /target="([^"]*)"/;
        $m{ ($bus // '') . '/' . ($t // '') } = $v;
    }
    return \%m;
}

# a batch of events to a PutEvents location: every entry accepted
sub put_batch {
    my ($path, $events) = @_;
    my $r = $ngx->request(method => 'POST', path => $path, timeout => 30,
                          body => $JSON->encode($events),
                          headers => [ 'Content-Type' => 'application/cloudevents-batch+json' ]);
    my $j = EBTest::json_decode($r->{body} // '');
    return 1 if $r->{status} == 200 && ref $j eq 'HASH' && ($j->{failedEntryCount} // -1) == 0;
    diag "PUT $path: $r->{status} " . substr($r->{body} // '', 0, 300);
    return 0;
}

sub ce {
    my ($id, $type, $data, %ext) = @_;
    return { specversion => '1.0', id => $id, source => '/t/091', type => $type,
             data => $data, %ext };
}

# The consumer names holding the leases of partitions 0 .. n-1
sub leases {
    my ($bus, $target, $n) = @_;
    my $r = $redis->cmd('MGET', map { "eb:{$bus}:ord:$target:p:$_" } 0 .. $n - 1);
    return ref $r eq 'ARRAY' ? $r : [ (undef) x $n ];
}

# How many entries were ever added to a stream (ebd makes the stream of
# every route with its consumer group: it may exist, empty)
sub entries_added {
    my ($key) = @_;
    my $r = $redis->cmd('XINFO', 'STREAM', $key);
    return 0 unless ref $r eq 'ARRAY';          # no such stream
    my %h = @$r;
    return $h{'entries-added'} // $h{length};
}

sub holders {
    my ($l) = @_;
    my %c;
    $c{$_}++ for grep { defined } @$l;
    return \%c;
}

# --- what the peer answered ------------------------------------------------------

my %REC;            # path => [ [arrival, status, delay, key, seq], ... ]
my %DISTINCT;       # path => { "key seq" => 1 } delivered (2xx)
my $rec_off = 0;

sub read_rec {
    open my $fh, '<', "$dir/rec.txt" or return;
    seek $fh, $rec_off, 0;
    while (my $line = <$fh>) {
        last unless $line =~ /\n\z/;        # being written
        $rec_off += length $line;
        my ($t, $path, $st, $d, $k, $q) = split ' ', $line;
        push @{ $REC{$path} }, [ $t, $st, $d, $k, $q ];
        $DISTINCT{$path}{"$k $q"} = 1 if $st >= 200 && $st < 300;
    }
}

sub delivered { read_rec(); return scalar keys %{ $DISTINCT{$_[0]} // {} } }

# The order per key of what a path answered 2xx: { keys => how many,
# out_of_order => [ "key: seqs" ... ], dups, late, dup_list, fails,
# early, requests, other }. $expect: { key => n } (seqs 1..n); requests
# for other keys are only counted ("other"). "early": requests for seq
# q > 1 that came before seq q-1 had been answered 2xx. "late": repeats
# of a seq that came after a later seq of the key was delivered (the
# target saw the key go back: at least once allows it only after a
# crash, when the acknowledgements of several events were lost).
sub order_report {
    my ($path, $expect) = @_;
    read_rec();
    my (%seen, %order, %answered);
    my ($dups, $fails, $early, $n, $other, $late, @dup) = (0, 0, 0, 0, 0, 0);
    for my $r (@{ $REC{$path} // [] }) {
        my ($t, $st, $d, $k, $q) = @$r;
        unless (exists $expect->{$k}) { $other++; next }
        $n++;
        $early++ if $q > 1 && !(defined $answered{$k}{$q - 1}
                                && $answered{$k}{$q - 1} <= $t + 0.001);
        if ($st >= 200 && $st < 300) {
            if ($seen{$k}{$q}++) {
                $dups++;
                my $max = (sort { $b <=> $a } @{ $order{$k} })[0];
                push @dup, sprintf('%s seq %d again %.3f s after its first 2xx%s', $k, $q,
                                   $t - $answered{$k}{$q},
                                   $max > $q ? ", after seq $max was delivered" : '');
                $late++ if $max > $q;
                next;
            }
            $answered{$k}{$q} //= $t + $d;
            push @{ $order{$k} }, $q;
        } else {
            $fails++;
        }
    }
    my @bad;
    for my $k (sort keys %$expect) {
        my $got = join ',', @{ $order{$k} // [] };
        push @bad, "$k: $got" if $got ne join ',', 1 .. $expect->{$k};
    }
    return { keys => scalar(keys %$expect), out_of_order => \@bad, dups => $dups,
             fails => $fails, early => $early, requests => $n, other => $other,
             late => $late, dup_list => \@dup };
}

sub report_line {
    my ($what, $r, $secs) = @_;
    my @dups = @{ $r->{dup_list} };
    splice @dups, 20;                   # the first 20 repeats, if more
    return sprintf('%s: %d requests, %d keys, %d out of order, %d duplicates '
                   . '(%d of them after a later event of their key), '
                   . '%d failed (503), %d sent before their predecessor was delivered%s, %.1f s',
                   $what, $r->{requests}, $r->{keys}, scalar @{ $r->{out_of_order} },
                   $r->{dups}, $r->{late}, $r->{fails}, $r->{early},
                   $r->{other} ? ", $r->{other} requests of other keys" : '', $secs // 0)
        . join('', map { "\n  duplicate: $_" } @dups);
}

# --- 2. the acceptance test: 3 ebd, 1,000 keys x 20, kill -9 -----------------------

my ($NKEYS, $NSEQ, $NP) = (1000, 20, 16);
my $TOTAL = $NKEYS * $NSEQ;
my $MAXEACH = 6;                     # ceil(16 / 3)

start_ebd($_) for qw(a b c);
ok(!grep({ !$ebd{$_}->alive } qw(a b c)), 'keyed: three ebd processes (a, b, c), -w 1 each')
    or diag join "\n", map { $ebd{$_}->log } qw(a b c);

# balanced before any event: all 16 partitions held, each of the three
# holds some and none more than its share
my $bal = sub {
    my ($names) = @_;
    my $l = leases('keyed', 'http', $NP);
    my $h = holders($l);
    return (16 == grep({ defined } @$l)
            && !grep({ !$h->{$_} || $h->{$_} > $MAXEACH } @$names)
            && !grep({ my $n = $_; !grep { $_ eq $n } @$names } keys %$h));
};
ok(wait_for(sub { $bal->([qw(a b c)]) }, 15),
   'keyed: the 16 partitions leased, balanced over a, b and c (1 to 6 each)')
    or diag 'leases: ' . $JSON->encode(leases('keyed', 'http', $NP));
diag 'keyed: leases at the start ' . $JSON->encode(holders(leases('keyed', 'http', $NP)));

my (%held_before_kill, $killed, $held_at_kill, $kill_t, $done_at_kill,
    $takeover_t, $takeover_leases, $restart_t, $rejoin_t, $rejoin_done);

# Called every 0.1 s while the events go: samples the leases; kills the
# ebd holding the most partitions once 35 % are delivered; notes when the
# others hold all 16; starts the killed one again 0.2 s later; notes when
# it holds partitions again while events are still being delivered.

sub tick {
    my $l = leases('keyed', 'http', $NP);
    my $h = holders($l);
    unless ($killed) {
        $held_before_kill{$_} = 1 for keys %$h;
        my $done = delivered('/o/keyed');
        if ($done >= 0.35 * $TOTAL && $done < $TOTAL) {
            # the one holding the most partitions
            ($killed) = sort { ($h->{$b} // 0) <=> ($h->{$a} // 0) || $a cmp $b } qw(a b c);
            $held_at_kill = $h->{$killed} // 0;
            $done_at_kill = $done;
            $ebd{$killed}->kill9;
            $kill_t = time;
            diag sprintf('keyed: kill -9 of %s (holding %d partitions) at %d of %d delivered',
                         $killed, $held_at_kill, $done, $TOTAL);
        }
        return;
    }
    if (!$takeover_t) {
        if (16 == grep { defined && $_ ne $killed } @$l) {
            $takeover_t = time;
            $takeover_leases = $h;
        } elsif (time - $kill_t > 15) {
            $takeover_t = -1;           # never: start it again all the same
        }
        return;
    }
    if (!$restart_t) {
        if (time - ($takeover_t > 0 ? $takeover_t : $kill_t) >= 0.2) {
            start_ebd($killed);
            $restart_t = time;
            diag sprintf('keyed: %s started again %.1f s after the kill, at %d delivered',
                         $killed, $restart_t - $kill_t, delivered('/o/keyed'));
        }
        return;
    }
    my $done = delivered('/o/keyed');
    if (!$rejoin_t && $h->{$killed} && $done < $TOTAL) {
        $rejoin_t = time;
        $rejoin_done = $done;
    }
}

# A round every 0.7 s (each after the previous one's 2xx), so that events
# still come when the killed ebd is back and the partitions move to it.
my $ROUND_GAP = 0.7;
my $t0 = time;
my ($accepted, $round, $round_due, $accept_secs) = (0, 1, $t0, 0);
while (time - $t0 < 90) {
    if ($round <= $NSEQ && time >= $round_due) {
        my $s = $round++;
        $round_due = time + $ROUND_GAP;
        my @ev = map { ce("k$_-$s", 't.keyed', { key => "k$_", seq => $s }) } 1 .. $NKEYS;
        $accepted++ if put_batch('/keyed', \@ev);
        $accept_secs = time - $t0 if $s == $NSEQ;
    }
    tick();
    last if $round > $NSEQ && delivered('/o/keyed') >= $TOTAL;
    sleep 0.1;
}
my $keyed_secs = time - $t0;
tick() for 1 .. 2;
start_ebd($killed) if $killed && !$restart_t;     # (the test failed already)
is($accepted, $NSEQ, "keyed: $NSEQ rounds of $NKEYS events accepted, round after round");
diag sprintf('keyed: %d events accepted over %.1f s', $accepted * $NKEYS, $accept_secs);
is($redis->cmd('EXISTS', map { "eb:{keyed}:target:http:p:$_" } 0 .. $NP - 1), $NP,
   'keyed: nginx wrote to the 16 partition streams eb:{keyed}:target:http:p:0..15');
is(entries_added('eb:{keyed}:target:http'), 0,
   'keyed: and nothing to the unpartitioned eb:{keyed}:target:http');
{
    my $got = delivered('/o/keyed');
    is($got, $TOTAL, "keyed: all $TOTAL (key, seq) delivered 2xx within 90 s")
        or diag "$got delivered";
    my $r = order_report('/o/keyed', { map { ("k$_" => $NSEQ) } 1 .. $NKEYS });
    diag report_line('keyed', $r, $keyed_secs);
    diag sprintf('keyed: %d keys out of order', scalar @{ $r->{out_of_order} });
    is(scalar @{ $r->{out_of_order} }, 0,
       'keyed: every key\'s 2xx deliveries, repeats removed, are exactly 1..20')
        or diag join "\n", grep { defined } @{ $r->{out_of_order} }[0 .. 9];
    is($r->{early}, 0, 'keyed: no event was sent before the previous one of its key was delivered');
    cmp_ok($r->{fails}, '>', 0, 'keyed: the peer did answer 503s');
}
ok($killed, 'keyed: an ebd was killed midway');
cmp_ok($held_at_kill // 0, '>=', 1, 'keyed: the killed ebd held partitions');
is(join(',', sort keys %held_before_kill), 'a,b,c', 'keyed: all three held partitions before the kill');
ok(($takeover_t // 0) > 0, 'keyed: after the kill all 16 leases were held by the live ones')
    or diag 'leases: ' . $JSON->encode(leases('keyed', 'http', $NP));
if (($takeover_t // 0) > 0) {
    my $after = $takeover_t - $kill_t;
    diag sprintf('keyed: the survivors held all 16 partitions %.1f s after the kill: %s',
                 $after, $JSON->encode($takeover_leases));
    cmp_ok($after, '<=', 8, 'keyed: within the 5 s lease (and 3 s to notice)');
    cmp_ok($after, '>=', 0.5, 'keyed: not at once: the lease had to expire')
        if $held_at_kill;
}
ok($rejoin_t, 'keyed: the killed ebd, started again, held partitions while events were still '
              . 'being delivered');
diag sprintf('keyed: %s held partitions again %.1f s after its start, at %d of %d delivered',
             $killed, $rejoin_t - $restart_t, $rejoin_done, $TOTAL) if $rejoin_t;

# three live again: balanced, and each one's metric says what it holds
ok(wait_for(sub { $bal->([qw(a b c)]) }, 15),
   'keyed: with the killed one back, balanced over a, b, c again')
    or diag 'leases: ' . $JSON->encode(leases('keyed', 'http', $NP));
{
    my ($m, $h);
    my $ok = wait_for(sub {
        $h = holders(leases('keyed', 'http', $NP));
        $m = { map { my $x = ordered_partitions($_); ($_ => $x ? $x->{'keyed/http'} : undef) } qw(a b c) };
        !grep { ($m->{$_} // -1) != ($h->{$_} // 0) } qw(a b c);
    }, 10);
    diag 'keyed: ebd_ordered_partitions ' . $JSON->encode($m) . ', leases ' . $JSON->encode($h);
    ok($ok, 'keyed: each ebd\'s ebd_ordered_partitions{bus="keyed",target="http"} is the leases it holds');
    is(eval { my $s = 0; $s += $_ // 0 for values %$m; $s }, 16, 'keyed: 16 in all');
}
unlike(join('', map { $ebd{$_}->log } qw(a b c)),
       qr/AddressSanitizer|runtime error:|outside its key's order/,
       'keyed: no sanitizer report, nothing delivered outside its key\'s order');

# two ebd from now on. A stopped ebd's leases (and its place among the
# live ones) run out like a killed one's: wait for a and b to hold every
# partition of every ordered (bus, target) before going on.
$ebd{c}->finish;
delete $ebd{c};
{
    my @ordered = ([ 'keyed', 'http', 16 ], [ 'none', 'seq', 1 ], [ 'grp', 'grp', 4 ],
                   [ 'pk', 'pk', 8 ], [ 'ovr', 'okd', 8 ], [ 'ovr', 'plain', 16 ]);
    my $t = time;
    my $ok = wait_for(sub {
        !grep { my $l = leases(@$_);
                grep { !defined || ($_ ne 'a' && $_ ne 'b') } @$l } @ordered }, 12);
    diag sprintf('c stopped (SIGTERM): a and b held all its partitions %.1f s later', time - $t);
    ok($ok, 'c stopped: every partition of every ordered target is held by a or b')
        or diag $JSON->encode({ map { ("$_->[0]/$_->[1]" => leases(@$_)) } @ordered });
}

# --- 3. fault_tolerance NONE: one at a time, in order, across two ebd ----------------

{
    my $t = time;
    my $ok = 1;
    for my $i (0 .. 3) {
        $ok &&= put_batch('/none', [ map { ce("n$_", 't.none', { key => 'n', seq => $_ }) }
                                     $i * 50 + 1 .. $i * 50 + 50 ]);
    }
    ok($ok, 'NONE: 200 events accepted in order');
    is($redis->cmd('EXISTS', 'eb:{none}:target:seq:p:0'), 1,
       'NONE: one partition, eb:{none}:target:seq:p:0');
    is(entries_added('eb:{none}:target:seq'), 0, 'NONE: nothing in eb:{none}:target:seq');
    ok(wait_for(sub { delivered('/o/none') >= 200 }, 30), 'NONE: all 200 delivered')
        or diag delivered('/o/none') . ' delivered';
    my $secs = time - $t;
    my $r = order_report('/o/none', { n => 200 });
    diag report_line('NONE', $r, $secs);
    is(scalar @{ $r->{out_of_order} }, 0, 'NONE: the 2xx deliveries, repeats removed, are exactly 1..200')
        or diag substr($r->{out_of_order}[0], 0, 2000);
    is($r->{early}, 0, 'NONE: none sent before the previous one was delivered');
    is($r->{late}, 0, 'NONE: none delivered again after a later one');
    cmp_ok($r->{fails}, '>', 0, 'NONE: through 503s');
    # one request at a time: each came after the previous one was answered
    my ($overlap, $prev) = (0, undef);
    for my $q (@{ $REC{'/o/none'} }) {
        $overlap++ if $prev && $q->[0] + 0.001 < $prev->[0] + $prev->[2];
        $prev = $q;
    }
    is($overlap, 0, 'NONE: never two requests open at once, across both ebd');
    my $holder = leases('none', 'seq', 1)->[0];
    ok(defined $holder && ($holder eq 'a' || $holder eq 'b'),
       'NONE: its one partition is leased by a live ebd') or diag $holder // 'none';
    diag 'NONE: lease held by ' . ($holder // 'nobody');
}

# --- 4. a failing key holds only itself --------------------------------------------

{
    my @good = map { "g$_" } 1 .. 40;
    my $pbad = fnv1a('bad') % 4;
    my @same = grep { fnv1a($_) % 4 == $pbad } @good;
    cmp_ok(scalar @same, '>=', 1, 'failing key: some good keys share partition ' . $pbad . ' with "bad"');
    note "in bad's partition: @same";
    my $ok = 1;
    for my $s (1 .. 4) {
        $ok &&= put_batch('/grp', [ map { ce("$_-$s", 't.grp', { key => $_, seq => $s }) }
                                    'bad', @good ]);
    }
    ok($ok, 'failing key: 4 rounds of bad + 40 good keys accepted');
    ok(wait_for(sub { delivered('/o/grp') >= 160
                      && $redis->xlen('eb:{grp}:dlq:grp') >= 4 }, 20),
       'failing key: the good ones delivered, bad\'s four dead-lettered')
        or diag delivered('/o/grp') . ' delivered, dlq ' . $redis->xlen('eb:{grp}:dlq:grp');
    my $r = order_report('/o/grp', { map { ($_ => 4) } @good });
    diag report_line('failing key (good keys)', $r);
    is(scalar @{ $r->{out_of_order} }, 0, 'failing key: every good key delivered 1..4 in order')
        or diag join "\n", @{ $r->{out_of_order} };
    is($r->{late}, 0, 'failing key: no good key\'s event delivered again after a later one');
    # bad's attempts, in order, each seq three times (1 + 2 retries)
    my @badr = grep { $_->[3] eq 'bad' } @{ $REC{'/o/grp'} };
    is(join(',', map { $_->[4] } @badr), '1,1,1,2,2,2,3,3,3,4,4,4',
       'failing key: bad\'s events tried in order, three times each, one after the other');
    my ($bad2) = grep { $_->[4] == 2 } @badr;
    my $bad1 = $badr[0];
    my $last = 0;
    my $last_same = 0;
    my %same = map { $_ => 1 } @same;
    for my $q (@{ $REC{'/o/grp'} }) {
        next unless $q->[1] == 200;
        $last = $q->[0] if $q->[0] > $last;
        $last_same = $q->[0] if $same{ $q->[3] } && $q->[0] > $last_same;
    }
    if ($bad1 && $bad2) {
        diag sprintf('failing key: the good keys all delivered %.3f s after bad\'s first attempt '
                     . '(those of its partition: %.3f s); bad\'s second event went %.3f s after it',
                     $last - $bad1->[0], $last_same - $bad1->[0], $bad2->[0] - $bad1->[0]);
    }
    ok($bad2 && $last < $bad2->[0],
       'failing key: all good keys delivered while bad\'s first event was still being retried');
    ok($bad2 && $last_same && $last_same < $bad2->[0],
       'failing key: the good keys of its own partition too');
    my @d = @{ $redis->xrange('eb:{grp}:dlq:grp') };
    my @dseq = map { (EBTest::json_decode($_->[1]{event} // '') // {})->{data}{seq} // '?' } @d;
    my @dkey = map { (EBTest::json_decode($_->[1]{event} // '') // {})->{data}{key} // '?' } @d;
    is(join(',', @dseq), '1,2,3,4', 'failing key: its dead letters in order');
    is(join(',', sort { $a cmp $b } keys %{{ map { $_ => 1 } @dkey }}), 'bad',
       'failing key: only bad\'s events dead-lettered');
    is(join(',', map { $_->[1]{attempts} // '?' } @d), '3,3,3,3', 'failing key: after 3 attempts each');
}

# --- 5. ordering_key "partitionkey" ----------------------------------------------

sub binary_event {
    my ($path, $id, $pk, $body) = @_;
    my $r = $ngx->request(method => 'POST', path => $path, body => $body,
                          headers => [ 'ce-specversion' => '1.0', 'ce-id' => $id,
                                       'ce-source' => '/t/091', 'ce-type' => 't.pk',
                                       defined $pk ? ('ce-partitionkey' => $pk) : (),
                                       'Content-Type' => 'application/json' ]);
    return $r->{status} >= 200 && $r->{status} < 300;
}

{
    my $t = time;
    my $ok = 1;
    for my $s (1 .. 10) {
        for my $k (1 .. 10) {
            $ok &&= binary_event('/pk', "pk$k-$s", "pk$k", qq({"seq":$s}));
        }
    }
    ok($ok, 'partitionkey: 100 binary events with ce-partitionkey accepted');
    ok(wait_for(sub { delivered('/o/pk') >= 100 }, 30), 'partitionkey: all delivered')
        or diag delivered('/o/pk') . ' delivered';
    my $r = order_report('/o/pk', { map { ("pk$_" => 10) } 1 .. 10 });
    diag report_line('partitionkey', $r, time - $t);
    is(scalar @{ $r->{out_of_order} }, 0, 'partitionkey: each key\'s deliveries in order 1..10')
        or diag join "\n", @{ $r->{out_of_order} };
    is($r->{early}, 0, 'partitionkey: none sent before its predecessor was delivered');
    is($r->{late}, 0, 'partitionkey: none delivered again after a later one of its key');
    my $n = fnv1a('pk1') % 8;
    is($redis->cmd('EXISTS', "eb:{pk}:target:pk:p:$n"), 1,
       "partitionkey: key pk1's entries went to eb:{pk}:target:pk:p:$n");

    # as nginx writes them (bus insp: no ebd reads it)
    ok(binary_event('/insp', 'x-pkA', 'pkA', '{"seq":1}')
       && binary_event('/insp', 'x-pkB', 'pkB', '{"seq":1}')
       && binary_event('/insp', 'x-nopk', undef, '{"seq":1}'),
       'partitionkey: three events into bus insp');
    for my $c ([ 'x-pkA', 'pkA' ], [ 'x-pkB', 'pkB' ], [ 'x-nopk', '' ]) {
        my ($id, $key) = @$c;
        my $p = fnv1a($key) % 8;
        my @e = grep { (EBTest::json_decode($_->[1]{event} // '') // {})->{id} eq $id }
                @{ $redis->xrange("eb:{insp}:target:pk:p:$p") };
        is(scalar @e, 1, "partitionkey: event $id in eb:{insp}:target:pk:p:$p");
        is($e[0] && $e[0][1]{key}, $key, "partitionkey: its entry's key is \"$key\"");
    }
}

# --- 6. a rule's target entry's own ordering_key --------------------------------------

sub streams_of {
    my ($pattern) = @_;
    my ($cur, @k) = (0);
    do {
        my $r = $redis->cmd('SCAN', $cur, 'MATCH', $pattern, 'COUNT', 1000);
        $cur = $r->[0];
        push @k, @{ $r->[1] };
    } while ($cur ne '0');
    return sort @k;
}

{
    my $u = "\x{fc}-\x{3b1}";         # ü-α
    my @ev = (
        ce('o-str', 't.ovr', { kind => 'ovr', key => 'K1', other => 'O1' }),
        ce('o-num', 't.ovr', { kind => 'ovr', key => 'K2', other => 42 }),
        ce('o-missing', 't.ovr', { kind => 'ovr', key => 'K3' }),
        ce('o-null', 't.ovr', { kind => 'ovr', key => 'K4', other => undef }),
        ce('o-utf8', 't.ovr', { kind => 'ovr', key => 'K5', other => $u }),
    );
    ok(put_batch('/insp', \@ev), 'override: five events into bus insp');
    my %okey = ('o-str' => 'O1', 'o-num' => '42', 'o-missing' => '', 'o-null' => '',
                'o-utf8' => Encode::encode_utf8($u));
    my %tkey = ('o-str' => 'K1', 'o-num' => 'K2', 'o-missing' => 'K3', 'o-null' => 'K4',
                'o-utf8' => 'K5');
    my (%want, %got);
    for my $id (keys %okey) {
        $want{"$id ovr_okd"} = 'eb:{insp}:target:okd:p:' . (fnv1a($okey{$id}) % 8) . " key=$okey{$id}";
        $want{"$id ovr_plain"} = 'eb:{insp}:target:plain:p:' . (fnv1a($okey{$id}) % 16) . " key=$okey{$id}";
        $want{"$id own_okd"} = 'eb:{insp}:target:okd:p:' . (fnv1a($tkey{$id}) % 8) . " key=$tkey{$id}";
        $want{"$id unord"} = 'eb:{insp}:target:plain no key';
    }
    for my $s (streams_of('eb:{insp}:target:*')) {
        next if $s =~ /:pk(:|$)/;
        for my $e (@{ $redis->xrange($s) }) {
            my $id = (EBTest::json_decode($e->[1]{event} // '') // {})->{id} // '?';
            $got{"$id " . ($e->[1]{rule} // '?')} =
                "$s " . (defined $e->[1]{key} ? "key=$e->[1]{key}" : 'no key');
        }
    }
    is_deeply(\%got, \%want,
              'override: each (rule, target) entry in the partition of its own key, '
              . 'the entry\'s ordering_key over the target\'s; unordered entries unpartitioned')
        or diag $JSON->encode({ got => \%got, want => \%want });

    # delivery in order of the entry's key through 503s, on an ordered
    # target (okd) and an unordered one (plain)
    my $t = time;
    my @o = qw(A B C D E);
    my $ok = 1;
    for my $s (1 .. 10) {
        $ok &&= put_batch('/ovr', [ map { ce("ov-$_-$s", 't.ovr',
                                             { key => "u$s$_", other => $_, seq => $s }) } @o ]);
    }
    ok($ok, 'override: 5 keys x 10 events accepted');
    ok(wait_for(sub { delivered('/o/ovr') >= 50 && delivered('/o/plain') >= 50 }, 30),
       'override: all delivered to both targets')
        or diag delivered('/o/ovr') . ' + ' . delivered('/o/plain') . ' delivered';
    for my $path ('/o/ovr', '/o/plain') {
        my $r = order_report($path, { map { ($_ => 10) } @o });
        diag report_line("override $path", $r, time - $t);
        is(scalar @{ $r->{out_of_order} }, 0, "override: $path in order per the entry's key")
            or diag join "\n", @{ $r->{out_of_order} };
        is($r->{early}, 0, "override: $path: none sent before its predecessor was delivered");
        is($r->{late}, 0, "override: $path: none delivered again after a later one of its key");
    }
    is($redis->cmd('EXISTS', 'eb:{ovr}:target:plain:p:' . (fnv1a('A') % 16)), 1,
       'override: the unordered target\'s entries of rule o2 partitioned by the entry\'s key');
    is(entries_added('eb:{ovr}:target:plain'), 0, 'override: none unpartitioned');
}

# --- 7. the console's backlog of a target in order: summed over its partitions ---
#
# Bus insp holds what sections 5 and 6 wrote and no ebd reads it: with a
# group "ebd" made at 0 on each of its streams, every entry is lag.

{
    my %want;
    for my $s (streams_of('eb:{insp}:target:*')) {
        my ($t) = $s =~ /^eb:\{insp\}:target:([^:]+)/;
        $redis->cmd('XGROUP', 'CREATE', $s, 'ebd', '0');
        $want{$t} += $redis->xlen($s);
    }
    my $r = $ngx->request(method => 'GET', path => '/console/api/overview?bus=insp');
    is($r->{status}, 200, 'console: the overview of bus insp') or diag $r->{body};
    my %got = map { ($_->{name} => [ $_->{lag}, $_->{pending} ]) }
              @{ ($r->{json} // {})->{targets} // [] };
    diag 'console: backlog ' . $JSON->encode(\%got) . ', entries ' . $JSON->encode(\%want);
    ok($want{okd} && $want{plain} && $want{pk}, 'console: entries in okd, plain and pk');
    is_deeply({ map { ($_ => $got{$_}) } keys %want },
              { map { ($_ => [ $want{$_}, 0 ]) } keys %want },
              'console: each target\'s lag is the sum over its stream and its partitions');
}

# --- 8. SIGHUP while keys are being delivered ---------------------------------------
#
# A reload finishes what is in flight, lets go of the rest (pending) and
# reads the partitions again under the same leases: per-key order holds
# across it, nothing is lost.

{
    my @k = map { "r$_" } 1 .. 100;
    my $before = delivered('/o/keyed');
    my $t = time;
    my $ok = 1;
    for my $s (1 .. 10) {
        $ok &&= put_batch('/keyed', [ map { ce("$_-$s", 't.keyed', { key => $_, seq => $s }) } @k ]);
        $ebd{a}->reload if $s == 3;         # while the first rounds go out
        $ebd{b}->reload if $s == 6;
        sleep 0.05;
    }
    ok($ok, 'reload: 100 keys x 10 events accepted');
    ok(wait_for(sub { delivered('/o/keyed') >= $before + 1000 }, 30), 'reload: all 1,000 delivered')
        or diag delivered('/o/keyed') - $before . ' delivered';
    ok(wait_for(sub { !grep { !/configuration reloaded/ } map { $ebd{$_}->log } qw(a b) }, 10),
       'reload: both ebd reloaded');
    my $r = order_report('/o/keyed', { map { ($_ => 10) } @k });
    diag report_line('reload', $r, time - $t);
    is(scalar @{ $r->{out_of_order} }, 0, 'reload: every key 1..10 in order across the reloads')
        or diag join "\n", @{ $r->{out_of_order} }[0 .. 9];
    is($r->{early}, 0, 'reload: none sent before its predecessor was delivered');
    is($r->{late}, 0, 'reload: none delivered again after a later one of its key');
}

# --- the end ---------------------------------------------------------------------

$ebd{$_}->finish for sort keys %ebd;
$ngx->finish;
diag sprintf('091: %.1f s in all', time - $T_START);
done_testing;
