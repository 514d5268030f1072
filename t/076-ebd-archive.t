#!/usr/bin/perl
# Archive and retention of eb:{BUS}:events, with a real nginx, Redis and
# ebd: `ebd archive export` writes the events of a window as NDJSON, byte
# for byte and in order; `ebd archive import` checks each line as a
# CloudEvent and appends it to another bus's stream (a bad line: exit 2,
# its number, nothing from it on); bad windows and unknown buses exit 2;
# a bus's "retention" (length, age) is enforced by ebd, events younger
# than the age stay, a backlog goes in bounded steps, and with -w only
# the first worker trims.
#
# Redis runs with stream-node-max-entries 1: "~" trimming then removes
# exactly what the bound says, so the tests can check the bound itself.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file slurp);

my $JSON = JSON::PP->new->utf8->canonical;
my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;

my $dir = tempdir('eb-075-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $redis = EBTest::Redis->start(args => [ '--stream-node-max-entries', '1' ]);

my $cfg = {
    buses => {
        hr      => { rules => {} },
        copy    => {},
        restore => {},
        aged    => { retention => { age => '2s' } },
        capped  => { retention => { length => 100 } },
        both    => { retention => { age => '1h', length => 50 } },
    },
};
my $cfg_path = "$dir/buses.json";
write_file($cfg_path, $JSON->encode($cfg));

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hr   { eventbridge_source my.dingtalk bus=hr; }
        location /aged { eventbridge_source my.dingtalk bus=aged; }
    }
EOF
write_file($ngx->dir . '/buses.json', $JSON->encode($cfg));
$ngx->start;

# ebd CLI: (exit code, stdout, stderr)
sub ebd_run {
    my (@args) = @_;
    my $cmd = join ' ', map { "'$_'" } $EBD, '-c', $cfg_path, '-r', $redis->addr, @args;
    my $out = `$cmd 2>$dir/stderr`;
    return ($? >> 8, $out, slurp("$dir/stderr"));
}

# POST an event: (status, its event id)
sub post {
    my ($path, $body) = @_;
    my $r = $ngx->request(method => 'POST', path => $path, body => $body,
                          headers => [ 'Content-Type' => 'application/json' ]);
    return ($r->{status}, (EBTest::json_decode($r->{body} // '') // {})->{eventId});
}

sub ms_of { ($_[0] =~ /^(\d+)-/)[0] }

sub rfc3339 {
    my ($ms) = @_;
    my @t = gmtime(int($ms / 1000));
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', $t[5] + 1900, $t[4] + 1,
                   @t[3, 2, 1, 0], $ms % 1000);
}

my $ding = slurp('t/data/dingtalk_user_add_org.json');

# --- 1. export a window -------------------------------------------------------

# three groups of events, a few ms apart, so that the middle one is a window
my $accepted = 0;
for my $g (0 .. 2) {
    for my $i (1 .. 10) {
        my $body = $ding;
        $body =~ s/"active": true/"active": true, "seq": "$g-$i"/;
        $accepted++ if (post('/hr', $body))[0] == 200;
    }
    sleep 0.05;
}
is($accepted, 30, '30 events accepted by nginx');
my $all = $redis->xrange('eb:{hr}:events');
is(scalar @$all, 30, '30 events in eb:{hr}:events');
my @mid = @$all[10 .. 19];
cmp_ok(ms_of($all->[9][0]), '<', ms_of($mid[0][0]), 'groups: in different milliseconds (before)');
cmp_ok(ms_of($mid[-1][0]), '<', ms_of($all->[20][0]), 'groups: in different milliseconds (after)');

{
    # --from in ms since the epoch, --to in RFC 3339 with milliseconds
    my ($rc, $out, $err) = ebd_run('archive', 'export', '--bus', 'hr',
                                   '--from', ms_of($mid[0][0]), '--to', rfc3339(ms_of($mid[-1][0])));
    is($rc, 0, 'export of a window: exit 0') or diag $err;
    is($out, join('', map { "$_->[1]{event}\n" } @mid),
       'export of a window: exactly its 10 events, byte for byte, in order');
    like($err, qr/exported 10 events from eb:\{hr\}:events/, 'export: says how many');

    ($rc, $out, $err) = ebd_run('archive', 'export', '--bus', 'hr', '--output', "$dir/hr.ndjson");
    is($rc, 0, 'export of everything to a file: exit 0') or diag $err;
    is($out, '', 'export to a file: nothing on stdout');
    is(slurp("$dir/hr.ndjson"), join('', map { "$_->[1]{event}\n" } @$all),
       'export to a file: all 30 events, byte for byte, in order');
    my @ids = map { (EBTest::json_decode($_) // {})->{id} } split /\n/, slurp("$dir/hr.ndjson");
    is(scalar(grep { defined } @ids), 30, 'export: every line is a JSON event with an id');

    ($rc, $out) = ebd_run('archive', 'export', '--bus', 'hr', '--from', '-1h', '--to', 'now');
    is($out, slurp("$dir/hr.ndjson"), 'export --from -1h --to now: the same');
    ($rc, $out, $err) = ebd_run('archive', 'export', '--bus', 'hr', '--from', '-10m', '--to', '-5m');
    is($rc, 0, 'export of an empty window: exit 0');
    is($out, '', 'export of an empty window: nothing');
    like($err, qr/exported 0 events/, 'export of an empty window: says 0');
}

# --- 2. import into another bus ----------------------------------------------

{
    my ($rc, $out, $err) = ebd_run('archive', 'import', '--bus', 'copy', '--input', "$dir/hr.ndjson");
    is($rc, 0, 'import: exit 0') or diag $err;
    like($err, qr/imported 30 events into eb:\{copy\}:events/, 'import: says how many');
    my $copy = $redis->xrange('eb:{copy}:events');
    is_deeply([ map { $_->[1]{event} } @$copy ], [ map { $_->[1]{event} } @$all ],
              'import: the same events, byte for byte, in order');
    is_deeply([ map { [ $_->[1]{rules}, $_->[1]{from} ] } @$copy[0, -1] ],
              [ [ '', 'archive' ], [ '', 'archive' ] ],
              'import: no rules matched (no fan-out), from "archive"');
    is(scalar(grep { /:target:/ } @{ $redis->cmd('KEYS', 'eb:{copy}:*') }), 0,
       'import: nothing written to any target stream');

    ($rc, $out) = ebd_run('archive', 'export', '--bus', 'copy');
    is($out, slurp("$dir/hr.ndjson"), 'export of the imported bus: the archive again');

    # more than a page (XRANGE COUNT 1000) and a batch of appends (1000)
    my @many = map { $all->[$_ % 30][1]{event} } 0 .. 2499;
    write_file("$dir/many.ndjson", join('', map { "$_\n" } @many));
    ($rc, $out, $err) = ebd_run('archive', 'import', '--bus', 'restore', '--input', "$dir/many.ndjson");
    like($err, qr/imported 2500 events/, 'import of 2,500 lines: all appended');
    ($rc, $out, $err) = ebd_run('archive', 'export', '--bus', 'restore');
    is($rc, 0, 'export of 2,500 entries: exit 0');
    ok($out eq slurp("$dir/many.ndjson"), 'export of 2,500 entries (three pages): the same lines, in order');
    $redis->cmd('DEL', 'eb:{restore}:events');

    # stdin, CRLF line ends and no final line end
    my $two = join("\r\n", map { $_->[1]{event} } @$all[0, 1]);
    write_file("$dir/two.ndjson", $two);
    $rc = system("'$EBD' -c '$cfg_path' -r " . $redis->addr
                 . " archive import --bus restore < '$dir/two.ndjson' 2>/dev/null") >> 8;
    is($rc, 0, 'import from stdin: exit 0');
    is_deeply([ map { $_->[1]{event} } @{ $redis->xrange('eb:{restore}:events') } ],
              [ map { $_->[1]{event} } @$all[0, 1] ],
              'import from stdin: CRLF and a last line without its line end');
    $redis->cmd('DEL', 'eb:{restore}:events');
}

# --- 3. bad input ----------------------------------------------------------------

{
    my @good = map { $_->[1]{event} } @$all[0 .. 2];
    my %bad = (
        'not JSON'            => [ '{"specversion":"1.0",', qr/line 3: not a CloudEvent: InvalidJSON/ ],
        'no specversion'      => [ '{"id":"x","source":"s","type":"t"}',
                                   qr/line 3: not a CloudEvent: MissingAttribute: .*specversion/ ],
        'an attribute twice'  => [ '{"specversion":"1.0","id":"a","id":"b","source":"s","type":"t"}',
                                   qr/line 3: not a CloudEvent: DuplicateAttribute/ ],
        'not an object'       => [ '[1,2]', qr/line 3: not a CloudEvent: InvalidEvent/ ],
        'an empty line'       => [ '', qr/line 3: empty/ ],
        'a line too long'     => [ '{"specversion":"1.0","id":"x","source":"s","type":"t","data":"'
                                   . ('x' x (16 * 1024 * 1024)) . '"}',
                                   qr/line 3: longer than 16777216 bytes/ ],
    );
    for my $what (sort keys %bad) {
        my ($line, $want) = @{ $bad{$what} };
        write_file("$dir/bad.ndjson", join("\n", @good[0, 1], $line, $good[2]) . "\n");
        my ($rc, $out, $err) = ebd_run('archive', 'import', '--bus', 'restore', '--input', "$dir/bad.ndjson");
        is($rc, 2, "bad input ($what): exit 2");
        like($err, $want, "bad input ($what): the line number and why");
        like($err, qr/imported 2 events into eb:\{restore\}:events; nothing from the bad line on/,
             "bad input ($what): says what was appended");
        is_deeply([ map { $_->[1]{event} } @{ $redis->xrange('eb:{restore}:events') } ],
                  [ @good[0, 1] ], "bad input ($what): the lines before it appended, nothing after");
        $redis->cmd('DEL', 'eb:{restore}:events');
    }

    my ($rc, $out, $err) = ebd_run('archive', 'import', '--bus', 'restore', '--input', "$dir/nonexistent");
    is($rc, 1, 'import of a missing file: exit 1');
    like($err, qr/nonexistent: No such file/, 'import of a missing file: says so');
}

# --- 4. bad windows, unknown buses, usage ----------------------------------------

{
    my @cases = (
        [ 'an unknown bus (export)', [ 'export', '--bus', 'nosuch' ], qr/has no bus "nosuch"/ ],
        [ 'an unknown bus (import)', [ 'import', '--bus', 'nosuch', '--input', "$dir/hr.ndjson" ],
          qr/has no bus "nosuch"/ ],
        [ 'a bad --from', [ 'export', '--bus', 'hr', '--from', 'yesterday' ], qr/--from: invalid time "yesterday"/ ],
        [ 'a bad --to', [ 'export', '--bus', 'hr', '--to', '2026-13-01T00:00:00Z' ], qr/--to: invalid time/ ],
        [ '--from after --to', [ 'export', '--bus', 'hr', '--from', 'now', '--to', '-1h' ],
          qr/the window is empty: --from "now" is after --to "-1h"/ ],
        [ 'no --bus', [ 'export' ], qr/usage: ebd archive export/ ],
        [ 'an unknown action', [ 'frobnicate', '--bus', 'hr' ], qr/usage: ebd archive/ ],
        [ '--input with export', [ 'export', '--bus', 'hr', '--input', 'x' ], qr/--input is import's/ ],
        [ '--since with archive', [ 'export', '--bus', 'hr', '--since', '-1h' ], qr/are not archive's/ ],
    );
    for my $c (@cases) {
        my ($what, $args, $want) = @$c;
        my ($rc, $out, $err) = ebd_run('archive', @$args);
        is($rc, 2, "$what: exit 2");
        like($err, $want, "$what: the message");
    }
    my ($rc, $out, $err) = ebd_run('--from', '-1h');
    is($rc, 2, '--from without archive: exit 2');

    # entries written by hand that cannot be a line: left out, named
    my $ok = $all->[0][1]{event};
    my $nl = $redis->cmd('XADD', 'eb:{restore}:events', '*', 'event', "{\n}");
    my $nofield = $redis->cmd('XADD', 'eb:{restore}:events', '*', 'other', 'x');
    $redis->cmd('XADD', 'eb:{restore}:events', '*', 'event', $ok);
    ($rc, $out, $err) = ebd_run('archive', 'export', '--bus', 'restore');
    is($rc, 1, 'export with unfit entries: exit 1');
    is($out, "$ok\n", 'export with unfit entries: the others written');
    like($err, qr/entry \Q$nl\E left out: the event has a line end/, 'export: names an event with a line end');
    like($err, qr/entry \Q$nofield\E left out: no event field/, 'export: names an entry without an event');

    # a failed export leaves no file behind; a device is written, not removed
    $redis->cmd('DEL', 'eb:{restore}:events');
    $redis->cmd('SET', 'eb:{restore}:events', 'not a stream');
    ($rc, $out, $err) = ebd_run('archive', 'export', '--bus', 'restore', '--output', "$dir/failed.ndjson");
    is($rc, 1, 'export from a key that is no stream: exit 1');
    like($err, qr/XRANGE eb:\{restore\}:events: WRONGTYPE/, 'export: says why');
    ok(!-e "$dir/failed.ndjson", 'export failed: no half-written file left');
    ($rc, $out, $err) = ebd_run('archive', 'import', '--bus', 'restore', '--input', "$dir/hr.ndjson");
    is($rc, 1, 'import into a key that is no stream: exit 1');
    like($err, qr/XADD eb:\{restore\}:events: WRONGTYPE/, 'import: says why');
    $redis->cmd('DEL', 'eb:{restore}:events');
    ($rc, $out, $err) = ebd_run('archive', 'export', '--bus', 'hr', '--output', '/dev/null');
    is($rc, 0, 'export to /dev/null: exit 0');
    ok(-c '/dev/null', '/dev/null is still there');
    is($redis->xlen('eb:{nosuch}:events'), 0, 'nothing was written for an unknown bus');
}

# --- 5. retention ------------------------------------------------------------------

{
    # before ebd starts: its first round comes at once
    my $old = int(time * 1000) - 60000;
    $redis->pipeline(map { [ 'XADD', 'eb:{aged}:events', ($old + $_) . '-0', 'event', "{\"old\":$_}" ] } 0 .. 199);
    post('/aged', $ding) for 1 .. 5;
    my @young = map { $_->[0] } grep { $_->[1]{event} !~ /"old"/ } @{ $redis->xrange('eb:{aged}:events') };
    is(scalar @young, 5, 'age: 200 old entries and 5 young events');

    # a backlog of 25,000 over the length: three steps of 10,000
    my @cmds = map { [ 'XADD', 'eb:{capped}:events', '*', 'event', "{\"n\":$_}" ] } 1 .. 25100;
    $redis->pipeline(@cmds[$_ * 5000 .. ($_ * 5000 + 4999 > $#cmds ? $#cmds : $_ * 5000 + 4999)]) for 0 .. 5;
    is($redis->xlen('eb:{capped}:events'), 25100, 'length: 25,100 entries');
    $redis->pipeline(map { [ 'XADD', 'eb:{both}:events', '*', 'event', "{\"n\":$_}" ] } 1 .. 80);

    my $t0 = time;
    my $ebd = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'r1', level => 'debug');
    like($ebd->log, qr/bus aged: retention of eb:\{aged\}:events: age 2000 ms, length 0/,
         'ebd says it keeps the retention of bus aged');

    ok(wait_for(sub { $redis->xlen('eb:{capped}:events') == 100 }, 5),
       'length: trimmed to 100 entries') or diag $redis->xlen('eb:{capped}:events');
    my $took = time - $t0;
    cmp_ok($took, '<', 5, sprintf('length: a backlog of 25,000 went in %.1f s (steps a tick apart, not a period)', $took));
    my $cap = $redis->xrange('eb:{capped}:events');
    is($cap->[0][1]{event} . ' ' . $cap->[-1][1]{event}, '{"n":25001} {"n":25100}',
       'length: the newest 100 kept');
    is($redis->xlen('eb:{both}:events'), 50, 'age and length: the length applies');

    ok(wait_for(sub { $redis->xlen('eb:{aged}:events') == 5 }, 5), 'age: the old entries removed');
    is_deeply([ map { $_->[0] } @{ $redis->xrange('eb:{aged}:events') } ], \@young,
              'age: the young events stay');

    # events keep coming; once the first 5 are past the age (and the next
    # round, 10 s after the first, ran) the entries younger than 2 s stay
    my ($seen_at, $gone_at, $end, @posts) = (time, undef, time + 15);
    while (time < $end) {
        my $t = time;
        my ($st, $id) = post('/aged', $ding);
        push @posts, [ $t, $id ] if $st == 200;
        my $before = time;
        my %ids = map { $_->[0] => 1 } @{ $redis->xrange('eb:{aged}:events') };
        if (grep { $ids{$_} } @young) {
            $seen_at = $before;
        } else {
            $gone_at = time;
            last;
        }
        sleep 0.2;
    }
    ok($gone_at, 'age: the first young events removed once older than 2 s');
    my @left = map { ms_of($_->[0]) } @{ $redis->xrange('eb:{aged}:events') };
    cmp_ok(scalar @left, '>', 0, 'age: newer events left (' . scalar(@left) . ')');
    my @too_old = grep { $_ < int($seen_at * 1000) - 2000 } @left;
    is(scalar @too_old, 0, 'age: nothing older than the age at the round left');
    # posted after the round's cut: their entry ids are at least the time
    # before the request
    my $ids = EBTest::event_ids($redis->xrange('eb:{aged}:events'));
    my @recent = grep { int($_->[0] * 1000) >= int($gone_at * 1000) + 1 - 2000 } @posts;
    cmp_ok(scalar @recent, '>', 3, 'age: events posted within 2 s of the round (' . scalar(@recent) . ')');
    is(join(' ', grep { !$ids->{ $_->[1] } } @recent), '', 'age: every one of them stays');
    is($redis->xlen('eb:{hr}:events'), 30, 'age: a bus without retention untouched');
    $ebd->finish;

    # -w 2: only the first worker trims
    my $w = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'm', args => [ '-w', '2' ]);
    ok(wait_for(sub { my @r = $w->log =~ /ebd: ready/g; @r == 2 }, 10), '-w 2: two workers ready');
    my @said = $w->log =~ /bus capped: retention of/g;
    is(scalar @said, 1, '-w 2: one worker keeps the retention');
    $w->finish;
}

# --- 6. on a Redis Cluster: retention and archive where each bus lives -------

SKIP: {
    skip 'redis-server 7 needed for the cluster', 7
        unless `redis-server --version 2>/dev/null` =~ /v=(\d+)/ && $1 >= 7;
    require EBTest::RedisCluster;
    my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 0,
                                        args => [ '--stream-node-max-entries', '1' ]);
    my @bus = $c->bus_names(3);
    my %owner = map { $_ => $c->primary_of_slot($c->slot_of("{$_}"))->port } @bus;
    is(scalar(keys %{ { reverse %owner } }), 3, "cluster: buses @bus on three primaries");
    my $ccfg = { buses => { map { $_ => { retention => { length => 10 } } } @bus } };
    write_file("$dir/cluster.json", $JSON->encode($ccfg));
    for my $b (@bus) {
        $c->cmd_key("eb:{$b}:events", 'XADD', "eb:{$b}:events", '*', 'event', $_->[1]{event})
            for @$all;
    }
    my $ebd = EBTest::Ebd->start(config => "$dir/cluster.json", redis_addr => join(',', $c->seeds),
                                 name => 'k1', args => [ '--cluster' ]);
    ok(wait_for(sub { !grep { $c->xlen("eb:{$_}:events") != 10 } @bus }, 10),
       'cluster: each bus trimmed to its length on its own primary')
        or diag join ' ', map { $c->xlen("eb:{$_}:events") } @bus;
    $ebd->finish;

    my @base = ($EBD, '-c', "$dir/cluster.json", '-r', join(',', $c->seeds), '--cluster');
    my $cmd = join ' ', map { "'$_'" } @base, 'archive', 'export', '--bus', $bus[0],
                                        '--output', "$dir/cluster.ndjson";
    is(system("$cmd 2>/dev/null") >> 8, 0, 'cluster: export exit 0');
    is(slurp("$dir/cluster.ndjson"), join('', map { "$_->[1]{event}\n" } @$all[20 .. 29]),
       'cluster: export of the newest 10, from the bus\'s primary');
    $cmd = join ' ', map { "'$_'" } @base, 'archive', 'import', '--bus', $bus[1],
                                     '--input', "$dir/cluster.ndjson";
    is(system("$cmd 2>/dev/null") >> 8, 0, 'cluster: import into a bus on another primary: exit 0');
    is_deeply([ map { $_->[1]{event} } @{ $c->xrange("eb:{$bus[1]}:events") } ],
              [ map { $_->[1]{event} } @$all[20 .. 29, 20 .. 29] ],
              'cluster: appended after that bus\'s own 10');
}

$ngx->finish;
done_testing;
