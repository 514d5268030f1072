#!/usr/bin/perl
# ebd replay, with a real nginx, Redis, ebd and HTTP peer:
#   1. a 100,000-event window (written straight into eb:{big}:events,
#      which is what nginx would have written) replayed at a --rate
#      while live events go through nginx: every event the current rules
#      select reaches each of its targets once, in acceptance order, and
#      the live events are delivered before the replay is over;
#   2. kill -9 of the replay mid-way, then the same command: no event
#      twice, none skipped;
#   3. a replay after the rules changed sends what the new rules select;
#      the replayed deliveries carry the CloudEvents attribute "replay"
#      (ce-replay in binary mode and on http targets, the attribute in
#      structured mode) and the trace marks them;
#   4. bad windows, unknown bus / rule / target: exit 2, a clear message,
#      nothing enqueued and no state; --dry-run counts and writes
#      nothing; --status lists the replays; on a pipe, one summary line,
#      on a terminal a progress bar;
#   5. on a Redis Cluster, each bus's replay on the primary of its slot.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file slurp);
use EBTest::Peer;

my $JSON = JSON::PP->new->utf8->canonical;
my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;

my @children;
END { my $rc = $?; for (@children) { kill 'KILL', $_; waitpid $_, 0 } $? = $rc; }

my $dir = tempdir('eb-079-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $redis = EBTest::Redis->start;
my $peer = EBTest::Peer->start;

sub cfg {
    my ($v) = @_;
    my $pick = $v == 1 ? 'x' : 'y';
    return {
        targets => {
            ra   => { type => 'redis', address => $redis->addr, stream => 'out:a' },
            rb   => { type => 'redis', address => $redis->addr, stream => 'out:b' },
            rr   => { type => 'redis', address => $redis->addr, stream => 'out:r' },
            # one at a time: the peer sees them in order
            ceb  => { type => 'cloudevents', url => $peer->url('/bin'),
                      fault_tolerance => 'NONE' },
            ces  => { type => 'cloudevents', url => $peer->url('/str'),
                      mode => 'structured', fault_tolerance => 'NONE' },
            hook => { type => 'http', url => $peer->url('/hook') },
        },
        buses => {
            big => { rules => {
                all  => { pattern => { source => ['my.dingtalk'] },
                          targets => [ { target => 'ra' } ] },
                even => { pattern => { type => ['t.even'] },
                          targets => [ { target => 'rb' } ] },
            } },
            res => { rules => {
                all => { pattern => { source => ['my.dingtalk'] },
                         targets => [ { target => 'rr' } ] },
            } },
            chg => { rules => {
                pick  => { pattern => { data => { body => { kind => [$pick] } } },
                           targets => [ { target => 'ceb' },
                                        ($v == 2 ? ({ target => 'ces' }) : ()) ] },
                ($v == 2 ? (hooky => { pattern => { data => { body => { kind => ['y'] } } },
                                       targets => [ { target => 'hook' } ] }) : ()),
                off   => { pattern => { data => { body => { kind => ['z'] } } }, enabled => JSON::PP::false,
                           targets => [ { target => 'hook' } ] },
            } },
        },
    };
}

my $cfg_path = "$dir/buses.json";
write_file($cfg_path, $JSON->encode(cfg(1)));

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /big { eventbridge_source my.dingtalk bus=big; }
        location /chg { eventbridge_source my.dingtalk bus=chg; }
    }
EOF
write_file($ngx->dir . '/buses.json', $JSON->encode(cfg(1)));
$ngx->start;

my $ebd = EBTest::Ebd->start(config => $cfg_path, redis => $redis);
ok($ebd->alive, 'ebd runs');

sub ebd_cmd { join ' ', map { "'$_'" } $EBD, '-c', $cfg_path, '-r', $redis->addr, @_ }

# the CLI: (exit code, stdout, stderr); sanitizer reports kept for the end
my @san;
sub ebd_run {
    my $out = `@{[ ebd_cmd(@_) ]} 2>$dir/stderr`;
    my $err = slurp("$dir/stderr");
    push @san, grep { /AddressSanitizer|LeakSanitizer|runtime error:/ } split /\n/, $err;
    return ($? >> 8, $out, $err);
}

sub post {
    my ($path, $body) = @_;
    my $r = $ngx->request(method => 'POST', path => $path, body => $body,
                          headers => [ 'Content-Type' => 'application/json' ]);
    return ($r->{status}, (EBTest::json_decode($r->{body} // '') // {})->{eventId});
}

# the id of the newest entry ever added to a stream (ebd trims what it
# acknowledged, so XLEN does not say whether anything was added)
sub last_added {
    my ($key) = @_;
    my $r = $redis->cmd('XINFO', 'STREAM', $key);
    return '-' unless ref $r eq 'ARRAY';
    my %h = @$r;
    return $h{'last-generated-id'};
}

sub ms_of { ($_[0] =~ /^(\d+)-/)[0] }

# a stream read in pages: [ [id, { fields }], ... ]
sub entries {
    my ($key) = @_;
    my (@all, $start);
    $start = '-';
    while (1) {
        my $r = $redis->cmd('XRANGE', $key, $start, '+', 'COUNT', 10000);
        last unless ref $r eq 'ARRAY' && @$r;
        push @all, map { [ $_->[0], { @{ $_->[1] } } ] } @$r;
        last if @$r < 10000;
        $start = "($r->[-1][0]";
    }
    return \@all;
}

# events straight into a bus's events stream: (first id, last id)
sub fill {
    my ($bus, $n, $mk) = @_;
    my ($first, $last);
    for (my $i = 1; $i <= $n; $i += 5000) {
        my $hi = $i + 4999 > $n ? $n : $i + 4999;
        my $r = $redis->pipeline(map { [ 'XADD', "eb:{$bus}:events", '*',
                                         'event', $mk->($_), 'rules', 'all' ] } $i .. $hi);
        $first //= $r->[0];
        $last = $r->[-1];
    }
    return ($first, $last);
}

sub ev_json {
    my ($id, $type) = @_;
    return qq({"specversion":"1.0","id":"$id","source":"my.dingtalk","type":"$type",)
         . qq("time":"2026-12-01T10:00:00Z","data":{"n":1}});
}

# the events' ids (a pattern, not a JSON parser: 100,000 of them; the
# test's events have no other "id" member)
sub ids_of {
    my ($entries, $replay) = @_;
    return [ map { $_->[1]{event} =~ /"id":"([^"]*)"/ ? $1 : '?' }
             grep { defined $replay ? ($_->[1]{replay} // '') eq $replay
                                    : !defined $_->[1]{replay} } @$entries ];
}

# --- 1. 100,000 events, with live traffic meanwhile ---------------------------

my $N = 100000;
my ($first, $last) = fill('big', $N, sub { ev_json("big-$_[0]", $_[0] % 2 ? 't.odd' : 't.even') });
is($redis->xlen('eb:{big}:events'), $N, "$N events in eb:{big}:events");

my ($from, $to) = (ms_of($first), ms_of($last));

{
    my ($rc, $out, $err) = ebd_run('replay', '--bus', 'big', '--from', $from, '--to', $to,
                                   '--dry-run');
    is($rc, 0, 'dry run: exit 0') or diag $err;
    like($out, qr/^target ra: $N$/m, "dry run: $N events for ra");
    like($out, qr/^target rb: @{[ $N \/ 2 ]}$/m, 'dry run: half of them for rb');
    is(last_added('eb:{big}:target:ra'), '0-0', 'dry run: nothing enqueued');
    is_deeply($redis->cmd('KEYS', 'eb:{big}:replay*'), [], 'dry run: no state');
}

my $t0 = time;
my $pid = fork // die;
if ($pid == 0) {
    open STDOUT, '>', "$dir/big.out";
    open STDERR, '>', "$dir/big.err";
    exec 'sh', '-c', ebd_cmd('replay', '--bus', 'big', '--from', $from, '--to', $to,
                             '--name', 'big1', '--rate', 10000)
        or POSIX::_exit(127);
}
push @children, $pid;

# live events while it runs, each delivered before the replay is over
my @live;
wait_for(sub { ($redis->cmd('HGET', 'eb:{big}:replay:big1', 'events') // 0) > 0 }, 10);
for my $i (1 .. 20) {
    my ($st, $id) = post('/big', '{"live":' . $i . '}');
    push @live, $id if $st == 200;
    sleep 0.05;
}
is(scalar @live, 20, 'live: 20 events accepted during the replay');
my $end = time + 90;
while (waitpid($pid, WNOHANG) == 0 && time < $end) { sleep 0.1 }
is($? >> 8, 0, 'replay: exit 0') or diag slurp("$dir/big.err");
my $took = time - $t0;
@children = grep { $_ != $pid } @children;

my $summary = slurp("$dir/big.out");
like($summary, qr/^replay big1 of bus big: done; $N events read, $N matched, @{[ 1.5 * $N ]} deliveries enqueued \(ra $N, rb @{[ $N \/ 2 ]}\) in [\d.]+ s, \d+ events\/s\n\z/,
     'pipe: one summary line') or diag $summary;
ok($took >= 9, sprintf('--rate 10000: %d events took %.1f s (>= 9 s)', $N, $took));
note sprintf('replay of %d events at --rate 10000: %.1f s', $N, $took);
is(slurp("$dir/big.err"), '', 'pipe: no progress bar');

ok(wait_for(sub { ($redis->xlen('out:a') // 0) >= $N + 20
                  && ($redis->xlen('out:b') // 0) >= $N / 2 }, 60),
   'ebd delivered the replay')
    or diag 'out:a ' . $redis->xlen('out:a') . ' out:b ' . $redis->xlen('out:b');
sleep 0.5;

my $a = entries('out:a');
my $b = entries('out:b');
is_deeply(ids_of($a, 'big1'), [ map { "big-$_" } 1 .. $N ],
          'ra: every event once, in acceptance order, marked replay big1');
is_deeply(ids_of($b, 'big1'), [ map { "big-" . 2 * $_ } 1 .. $N / 2 ],
          'rb: the t.even events once, in order');
is_deeply([ sort @{ ids_of($a, undef) } ], [ sort @live ], 'ra: the live events once, not marked');
is(scalar @$b, $N / 2, 'rb: nothing else');
{
    # an entry's id in out:a is when the redis target delivered it
    my %at = map { ($_->[1]{event} =~ /"id":"([^"]*)"/)[0] => ms_of($_->[0]) } @$a;
    my $finished = $redis->cmd('HGET', 'eb:{big}:replay:big1', 'finished');
    my @late = grep { !defined $at{$_} || $at{$_} >= $finished } @live;
    ok(!@late, 'live: every live event delivered before the replay was over')
        or diag "late: @late; replay finished at $finished";
    ok((grep { $at{$_} < $at{"big-$N"} } @live) == @live,
       'live: delivered before the last replayed event');
}
{
    my %h = @{ $redis->cmd('HGETALL', 'eb:{big}:replay:big1') };
    is_deeply([ @h{qw(state events deliveries t:ra t:rb cursor)} ],
              [ 'done', $N, 1.5 * $N, $N, $N / 2, $last ], 'state: done, counts, cursor');
}
{
    my $tr = $redis->cmd('XREVRANGE', 'eb:{big}:trace', '+', '-', 'COUNT', 1000);
    my @tr = map { { @{ $_->[1] } } } @$tr;
    ok((grep { ($_->{replay} // '') eq 'big1' && $_->{outcome} eq 'delivered' } @tr) > 0,
       'trace: attempts marked replay big1');
}

{
    my $was = last_added('eb:{big}:target:ra');
    my ($rc, $out) = ebd_run('replay', '--bus', 'big', '--from', $from, '--to', $to,
                             '--name', 'big1');
    is($rc, 0, 'the same command again: exit 0');
    like($out, qr/done already/, 'the same command again: done already');
    is(last_added('eb:{big}:target:ra'), $was, 'the same command again: nothing enqueued');
}

# --- 2. kill -9 mid-way, then the same command ------------------------------

my $M = 20000;
my ($rf, $rl) = fill('res', $M, sub { ev_json("res-$_[0]", 't') });
my @res_cmd = ('replay', '--bus', 'res', '--from', ms_of($rf), '--to', ms_of($rl),
               '--name', 'res1');

$pid = fork // die;
if ($pid == 0) {
    open STDOUT, '>', "$dir/res.out";
    open STDERR, '>', "$dir/res.err";
    exec $EBD, '-c', $cfg_path, '-r', $redis->addr, @res_cmd, '--rate', 5000
        or POSIX::_exit(127);
}
push @children, $pid;
ok(wait_for(sub { ($redis->cmd('HGET', 'eb:{res}:replay:res1', 'events') // 0) >= 3000 }, 20),
   'resume: the replay is under way');
kill 'KILL', $pid;
waitpid $pid, 0;
@children = grep { $_ != $pid } @children;
my %mid = @{ $redis->cmd('HGETALL', 'eb:{res}:replay:res1') };
ok($mid{events} > 0 && $mid{events} < $M, "resume: killed after $mid{events} events");
is($mid{state}, 'running', 'resume: the state says running');
{
    my $r = $redis->cmd('XINFO', 'STREAM', 'eb:{res}:target:rr');
    my %h = @$r;
    is($h{'entries-added'}, $mid{events}, 'resume: as many enqueued as the cursor says');
}

{
    my ($rc, $out, $err) = ebd_run(@res_cmd);
    is($rc, 0, 'resume: exit 0') or diag $err;
    like($err, qr/resuming res1 after entry \Q$mid{cursor}\E \($mid{events} events done\)/,
         'resume: says where it goes on');
    like($out, qr/: done; @{[ $M - $mid{events} ]} events read/, 'resume: the rest only');
}
ok(wait_for(sub { ($redis->xlen('out:r') // 0) >= $M }, 30), 'resume: delivered');
sleep 0.3;
is_deeply(ids_of(entries('out:r'), 'res1'), [ map { "res-$_" } 1 .. $M ],
          'resume: every event once, in order: none twice, none skipped');

# --- 3. a changed rule set; the replay attribute; the trace ------------------

my @chg;
for my $i (1 .. 10) {
    my ($st, $id) = post('/chg', $JSON->encode({ kind => $i % 2 ? 'x' : 'y', i => $i }));
    push @chg, $id if $st == 200;
}
is(scalar @chg, 10, 'chg: 10 events accepted');
my @x = @chg[0, 2, 4, 6, 8];
my @y = @chg[1, 3, 5, 7, 9];
ok(wait_for(sub { @{ $peer->requests(path => '/bin') } >= 5 }, 10), 'chg: the x events delivered live');
my $chg_to = time;

# the new rules: pick selects y (to ceb and ces), hooky y (to hook)
write_file($cfg_path, $JSON->encode(cfg(2)));
$ebd->reload;
ok(wait_for(sub { $ebd->log =~ /configuration reloaded/ }, 10), 'ebd reloaded');
sleep 0.5;
my $chg_from = ms_of($redis->cmd('XRANGE', 'eb:{chg}:events', '-', '+', 'COUNT', 1)->[0][0]);

{
    my ($rc, $out, $err) = ebd_run('replay', '--bus', 'chg', '--from', $chg_from,
                                   '--to', 'now', '--rule', 'pick', '--name', 'chg1');
    is($rc, 0, 'chg: replay with the new rules: exit 0') or diag $err;
    like($out, qr/10 events read, 5 matched, 10 deliveries enqueued \(ceb 5, ces 5\)/,
         'chg: the new rule selects the y events, for ceb and ces');
}
ok(wait_for(sub { @{ $peer->requests(path => '/bin') } >= 10
                  && @{ $peer->requests(path => '/str') } >= 5 }, 20), 'chg: replayed');
sleep 0.5;
{
    my @bin = @{ $peer->requests(path => '/bin') };
    is(scalar @bin, 10, 'ceb: 5 live + 5 replayed');
    is_deeply([ map { $_->{headers}{'ce-id'} } @bin[0 .. 4] ], \@x, 'ceb: the live x events');
    is_deeply([ map { $_->{headers}{'ce-replay'} } @bin[0 .. 4] ], [ (undef) x 5 ],
              'ceb: live deliveries carry no replay');
    is_deeply([ map { $_->{headers}{'ce-id'} } @bin[5 .. 9] ], \@y,
              'ceb: then the y events, in order');
    is_deeply([ map { $_->{headers}{'ce-replay'} } @bin[5 .. 9] ], [ ('chg1') x 5 ],
              'binary mode: ce-replay: chg1');
    my @str = @{ $peer->requests(path => '/str') };
    my @ev = map { $JSON->decode($_->{body}) } @str;
    is_deeply([ map { $_->{id} } @ev ], \@y, 'ces: the y events, in order');
    is_deeply([ map { $_->{replay} } @ev ], [ ('chg1') x 5 ],
              'structured mode: the attribute "replay": "chg1"');
    is_deeply([ map { $_->{data}{body}{kind} } @ev ], [ ('y') x 5 ], 'structured mode: the data as stored');
    is(scalar @{ $peer->requests(path => '/hook') }, 0, 'hook: not selected, nothing');
}
{
    my ($rc, $out, $err) = ebd_run('replay', '--bus', 'chg', '--from', $chg_from,
                                   '--to', 'now', '--rule', 'hooky', '--target', 'hook',
                                   '--name', 'chg2');
    is($rc, 0, 'chg: --rule hooky --target hook: exit 0') or diag $err;
}
ok(wait_for(sub { @{ $peer->requests(path => '/hook') } >= 5 }, 20), 'hook: replayed');
{
    my @h = @{ $peer->requests(path => '/hook') };
    is_deeply([ map { $_->{headers}{'ce-replay'} } @h ], [ ('chg2') x 5 ],
              'http target: ce-replay: chg2 beside ce-id');
}
{
    my @tr = grep { $_->[1]{target} eq 'ceb' } @{ entries('eb:{chg}:trace') };
    is_deeply([ map { $_->[1]{replay} // '-' } @tr ], [ ('-') x 5, ('chg1') x 5 ],
              'trace: the replayed attempts marked, the live ones not');
    my ($rc, $out) = ebd_run('trace', '--bus', 'chg', '--target', 'ceb');
    is(scalar(() = $out =~ /  replay chg1$/mg), 5, 'ebd trace prints "replay chg1"');
}

# --- 4. errors, dry run, status ----------------------------------------------

my $before = join ',', map { last_added("eb:{chg}:target:$_") } qw(ceb ces hook);
my $keys = join ',', sort @{ $redis->cmd('KEYS', 'eb:{chg}:replay*') };
for my $case (
    [ 'unknown bus',   [ '--bus', 'nobus', '--from', 0, '--to', 'now' ], qr/has no bus "nobus"/ ],
    [ 'unknown rule',  [ '--bus', 'chg', '--from', 0, '--to', 'now', '--rule', 'nope' ],
      qr/bus "chg" has no rule "nope"/ ],
    [ 'disabled rule', [ '--bus', 'chg', '--from', 0, '--to', 'now', '--rule', 'off' ],
      qr/rule "off" of bus "chg" is disabled/ ],
    [ 'unknown target', [ '--bus', 'chg', '--from', 0, '--to', 'now', '--target', 'nope' ],
      qr/has no target "nope"/ ],
    [ 'target not of the rule', [ '--bus', 'chg', '--from', 0, '--to', 'now', '--rule', 'pick',
                                  '--target', 'hook' ],
      qr/no selected rule of bus "chg" sends to target "hook"/ ],
    [ 'from after to', [ '--bus', 'chg', '--from', 'now', '--to', '-1h' ],
      qr/the window is empty: --from "now" is after --to "-1h"/ ],
    [ 'bad time',      [ '--bus', 'chg', '--from', 'yesterday', '--to', 'now' ],
      qr/--from: invalid time "yesterday"/ ],
    [ 'no --to',       [ '--bus', 'chg', '--from', 0 ], qr/--from and --to are required/ ],
    [ 'bad name',      [ '--bus', 'chg', '--from', 0, '--to', 'now', '--name', 'a b' ],
      qr/--name: use 1 to 128 letters/ ],
    [ 'bad rate',      [ '--bus', 'chg', '--from', 0, '--to', 'now', '--rate', 0 ],
      qr/--rate: events per second/ ],
    [ 'name taken by another window', [ '--bus', 'chg', '--from', 1, '--to', 'now',
                                        '--rule', 'pick', '--name', 'chg1' ],
      qr/replay "chg1" of bus "chg" exists with another window/ ],
    [ 'name taken by other rules', [ '--bus', 'chg', '--from', $chg_from, '--to', 'now',
                                     '--name', 'chg1' ],
      qr/replay "chg1" of bus "chg" exists with other rules/ ],
) {
    my ($what, $args, $re) = @$case;
    my ($rc, $out, $err) = ebd_run('replay', @$args);
    is($rc, 2, "$what: exit 2");
    like($err, $re, "$what: says why") or diag $err;
}
is(join(',', map { last_added("eb:{chg}:target:$_") } qw(ceb ces hook)), $before,
   'errors: nothing enqueued');
is(join(',', sort @{ $redis->cmd('KEYS', 'eb:{chg}:replay*') }), $keys, 'errors: no state made');

{
    my ($rc, $out) = ebd_run('replay', '--bus', 'chg', '--from', $chg_from, '--to', 'now',
                             '--dry-run');
    is($rc, 0, 'dry run: exit 0');
    like($out, qr/^target ceb: 5\ntarget ces: 5\ntarget hook: 5\n/m, 'dry run: per target');
    is(join(',', map { last_added("eb:{chg}:target:$_") } qw(ceb ces hook)), $before,
       'dry run: nothing enqueued');
    is(join(',', sort @{ $redis->cmd('KEYS', 'eb:{chg}:replay*') }), $keys, 'dry run: no state');
}
{
    my ($rc, $out) = ebd_run('replay', '--status');
    is($rc, 0, '--status: exit 0');
    like($out, qr/^bus big  replay big1  done  .* events $N  deliveries @{[ 1.5 * $N ]}  ra $N  rb @{[ $N \/ 2 ]}/m,
         '--status: big1');
    like($out, qr/^bus res  replay res1  done .* events $M /m, '--status: res1');
    like($out, qr/^bus chg  replay chg1  done .* rules pick /m, '--status: chg1 and its rules');
    like($out, qr/^bus chg  replay chg2  done .* targets hook /m, '--status: chg2 and its targets');
    ($rc, $out) = ebd_run('replay', '--status', '--bus', 'res');
    is(scalar(() = $out =~ /^bus /mg), 1, '--status --bus res: its replay only');
}

# a terminal: the progress line (script(1), from bsdutils, gives it one)
SKIP: {
    skip 'no script(1)', 3 unless grep { -x "$_/script" } split /:/, $ENV{PATH};
    my $cmd = ebd_cmd('replay', '--bus', 'chg', '--from', $chg_from, '--to', 'now',
                      '--rule', 'pick', '--name', 'tty1');
    my $out = `script -qec "$cmd" /dev/null`;
    is($? >> 8, 0, 'terminal: exit 0');
    like($out, qr/\r\[#{40}\] 10\/~10 events  \d+ events\/s  0m00s left/,
         'terminal: a progress bar, events/s, time left') or diag $out;
    like($out, qr/^replay tty1 of bus chg: done; 10 events read/m, 'terminal: then the summary');
}

# --- 5. on a Redis Cluster: each bus's replay on its own primary -------------

SKIP: {
    skip 'redis-server 7 needed for the cluster', 5
        unless `redis-server --version 2>/dev/null` =~ /v=(\d+)/ && $1 >= 7;
    require EBTest::RedisCluster;
    my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 0);
    my @bus = $c->bus_names(3);
    my %owner = map { $_ => $c->primary_of_slot($c->slot_of("{$_}"))->port } @bus;
    is(scalar(keys %{ { reverse %owner } }), 3, "cluster: buses @bus on three primaries");
    my $ccfg = { targets => { ct => { type => 'redis', address => '127.0.0.1:1', stream => 'x' } },
                 buses => { map { $_ => { rules => { all => {
                     pattern => { source => ['my.dingtalk'] },
                     targets => [ { target => 'ct' } ] } } } } @bus } };
    write_file("$dir/cluster.json", $JSON->encode($ccfg));
    for my $b (@bus) {
        my $node = $c->primary_of_slot($c->slot_of("{$b}"));
        $node->pipeline(map { [ 'XADD', "eb:{$b}:events", '*', 'event', ev_json("$b-$_", 't') ] }
                        1 .. 600);
    }
    my @base = ($EBD, '-c', "$dir/cluster.json", '-r', join(',', $c->seeds), '--cluster');
    my @rc = map { system(join(' ', map { "'$_'" } @base, 'replay', '--bus', $_, '--from', 0,
                                '--to', 'now', '--name', 'c1') . " >/dev/null 2>>$dir/stderr") >> 8 }
             @bus;
    is("@rc", '0 0 0', 'cluster: a replay per bus: exit 0') or diag slurp("$dir/stderr");
    is_deeply([ map { ids_of([ map { [ $_->[0], $_->[1] ] } @{ $c->xrange("eb:{$_}:target:ct") } ], 'c1') } @bus ],
              [ map { my $b = $_; [ map { "$b-$_" } 1 .. 600 ] } @bus ],
              'cluster: each bus\'s events once, in order, on its own primary');
    is_deeply([ map { $c->cmd_key("eb:{$_}:replay:c1", 'HGET', "eb:{$_}:replay:c1", 'state') } @bus ],
              [ ('done') x 3 ], 'cluster: each state done');
    my $st = `@{[ join ' ', map { "'$_'" } @base, 'replay', '--status' ]} 2>&1`;
    is(scalar(() = $st =~ /^bus \S+  replay c1  done  .* events 600  deliveries 600 /mg), 3,
       'cluster: --status asks each bus\'s primary') or diag $st;
    $c->stop;
}

push @san, grep { /AddressSanitizer|LeakSanitizer|runtime error:/ } split /\n/,
    join '', map { -e $_ ? slurp($_) : '' } "$dir/big.err", "$dir/res.err";
ok(!@san, 'ebd replay: no sanitizer report') or diag join "\n", @san;

$ebd->finish;
$ngx->finish;
done_testing;
