#!/usr/bin/perl
# ebd's core, end to end with a real nginx, real redis-servers and a real
# ebd: what nginx accepts reaches the target (here `redis` targets, which
# need no other server); at least once through crashes (kill -9 of ebd in
# the middle of 10,000 events, of Redis with AOF), restarts, SIGTERM and
# SIGHUP; retries, giving up, dead letters and redrive; fault tolerance
# NONE keeps order; another consumer takes over a dead one's entries;
# `ebd trace` (with each event's W3C traceparent); no secret in logs,
# traces or dead letters.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Encode ();
use POSIX ();
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);

my $JSON = JSON::PP->new->utf8->canonical;
my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;

my @children;
END { my $rc = $?; for (@children) { kill 'KILL', $_; waitpid $_, 0 } $? = $rc; }

sub post {
    my ($ngx, $path, $body) = @_;
    my $r = $ngx->request(method => 'POST', path => $path, body => $body,
                          headers => [ 'Content-Type' => 'application/json' ]);
    $r->{json} = EBTest::json_decode($r->{body} // '');
    return $r;
}

# Entries of a stream as [id, {fields}]
sub entries { $_[0]->xrange($_[1]) }

sub pending_count {
    my ($redis, $stream) = @_;
    my $r = $redis->cmd('XPENDING', $stream, 'ebd');
    return ref $r eq 'ARRAY' ? $r->[0] : -1;
}

sub ebd_run {
    my ($redis, @args) = @_;
    my $cmd = join ' ', map { "'$_'" } $EBD, '-r', $redis->addr, @args;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

my $dir = tempdir('eb-072-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $redis = EBTest::Redis->start(appendonly => 'yes',
                                 args => [ '--appendfsync', 'always' ]);
my $port2 = EBTest::free_port();      # a second Redis, started later
my $port3 = EBTest::free_port();
my $SECRET = 'pw-Zq8-never-logged';
# the ordered target reads it from a file (ebd_secret.c), final line end
# and all
my $secret_file = "$dir/ordered.secret";
{
    open my $fh, '>', $secret_file or die "$secret_file: $!";
    print $fh "$SECRET\n";
    close $fh;
}

my $retry_fast = { strategy => 'backoff', attempts => 1000,
                   interval => '50ms', max_interval => '100ms' };

my $cfg = {
    targets => {
        chain   => { type => 'redis', address => $redis->addr, stream => 'out:chain' },
        typed   => { type => 'redis', address => $redis->addr, stream => 'out:typed',
                     retry => $retry_fast },
        # a host name: resolved once when the target is opened, not by hiredis
        remote  => { type => 'redis', address => "localhost:$port2", stream => 'out:remote',
                     password => $SECRET, retry => $retry_fast },
        dead    => { type => 'redis', address => '127.0.0.1:1', stream => 'x',
                     retry => { strategy => 'backoff', attempts => 2,
                                interval => '20ms', max_interval => '30ms' } },
        dropper => { type => 'redis', address => '127.0.0.1:1', stream => 'x',
                     dead_letter => JSON::PP::false,
                     retry => { attempts => 0, interval => '10ms' } },
        ordered => { type => 'redis', address => "127.0.0.1:$port2", stream => 'out:ordered',
                     password_file => $secret_file, fault_tolerance => 'NONE',
                     retry => { strategy => 'exponential', attempts => 1,
                                interval => '20ms', max_interval => '80ms' } },
        sink    => { type => 'redis', address => $redis->addr, stream => 'out:sink',
                     concurrency => 64 },
        later   => { type => 'redis', address => "127.0.0.1:$port3", stream => 'out:later',
                     retry => $retry_fast },
        tobus   => { type => 'redis', address => $redis->addr, stream => 'eb:{chained}:events' },
        csink   => { type => 'redis', address => $redis->addr, stream => 'out:chained' },
        patient => { type => 'redis', address => '127.0.0.1:1', stream => 'x',
                     retry => { strategy => 'backoff', attempts => 5,
                                interval => '3s', max_interval => '3s' } },
    },
    buses => {
        hr => { rules => {
            'new-employee' => {
                pattern => { source => ['my.dingtalk'],
                             data => { body => { syncAction => ['user_add_org'] } } },
                targets => [
                    { target => 'chain',
                      transform => { form => 'TEMPLATE',
                                     value => { name => '$.data.body.name',
                                                id => '$.data.body.userId' },
                                     template => '{"user":"${name}","id":"${id}"}' } },
                ] },
            'typed'  => { pattern => { data => { body => { kind => ['typed'] } } },
                          targets => [ { target => 'typed' } ] },
            'remote' => { pattern => { data => { body => { kind => ['remote'] } } },
                          targets => [ { target => 'remote' } ] },
            'tobus'   => { pattern => { data => { body => { kind => ['tobus'] } } },
                           targets => [ { target => 'tobus' } ] },
            'patient' => { pattern => { data => { body => { kind => ['patient'] } } },
                           targets => [ { target => 'patient' } ] },
            'dead'   => { pattern => { data => { body => { kind => ['dead'] } } },
                          targets => [ { target => 'dead' }, { target => 'dropper' } ] },
            'ordered' => { pattern => { data => { body => { kind => ['ordered'] } } },
                           targets => [ { target => 'ordered',
                                          transform => { form => 'JSONPATH',
                                                         value => '$.data.body.seq' } } ] },
        } },
        chained => { rules => {
            'from-hr' => { pattern => { data => { body => { kind => ['tobus'] } } },
                           targets => [ { target => 'csink',
                                          transform => { form => 'JSONPATH', value => '$.data.body.n' } } ] },
            'never'   => { pattern => { source => ['nobody'] }, targets => [ { target => 'csink' } ] },
        } },
        burst => { rules => {
            all => { pattern => { source => [{ prefix => '' }] },
                     targets => [ { target => 'sink' } ] },
        } },
        claim => { rules => {
            all => { pattern => { source => [{ prefix => '' }] },
                     targets => [ { target => 'later' } ] },
        } },
    },
};
my $cfg_path = "$dir/buses.json";
write_file($cfg_path, $JSON->encode($cfg));

my $ngx = EBTest::Nginx->new(redis => $redis, workers => 2, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hr    { eventbridge_source my.dingtalk bus=hr; }
        location /burst { eventbridge_source burst.src bus=burst; }
    }
EOF
write_file($ngx->dir . '/buses.json', $JSON->encode($cfg));
$ngx->start;

my $ebd = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'c1',
                             level => 'debug', args => [ '--claim-idle', '60s' ]);
# 11 (bus, target)s, and the NONE target's one partition (t/091)
like($ebd->log, qr/ebd: ready: consumer "c1", 12 route\(s\)/, 'ebd ready with a route per (bus, target) and partition');

# --- 1. nginx -> Redis -> ebd -> target, with a transform ---------------------

my $ding = do { local $/; open my $fh, '<', 't/data/dingtalk_user_add_org.json' or die; <$fh> };
my $body = EBTest::json_decode($ding);
my $r = post($ngx, '/hr', $ding);
is($r->{status}, 200, 'walkthrough event accepted');
my $eid = $r->{json}{eventId} // '';
ok(wait_for(sub { @{ entries($redis, 'out:chain') } == 1 }, 10), 'delivered to the chain target');
my $got = entries($redis, 'out:chain')->[0][1] // {};
is_deeply(EBTest::json_decode($got->{event} // ''),
          { user => $body->{name}, id => $body->{userId} },
          'the target received the rule\'s TEMPLATE output');
is($got->{from}, 'hr/new-employee', 'the target entry says where it came from');
ok(wait_for(sub { pending_count($redis, 'eb:{hr}:target:chain') == 0 }, 5),
   'the entry is acknowledged');
ok(wait_for(sub { $redis->xlen('eb:{hr}:target:chain') <= 1 }, 12),
   'acknowledged entries are trimmed from the target stream');

# the trace: accepted (nginx) + delivered (ebd)
{
    my ($rc, $out) = ebd_run($redis, 'trace', '--bus', 'hr', '--event', $eid);
    is($rc, 0, 'ebd trace --event exits 0') or diag $out;
    like($out, qr/accepted\s+source my\.dingtalk .*rules new-employee/, 'trace: accepted, with source and matched rules');
    like($out, qr/delivered\s+target chain\s+attempt 1 .*event \Q$eid\E\s+rule new-employee/, 'trace: the delivery');
    ($rc, $out) = ebd_run($redis, 'trace', '--bus', 'hr', '--since', '-1m', '--target', 'chain');
    like($out, qr/delivered\s+target chain/, 'trace: a time range');

    # every line carries the event's traceparent (here one nginx started)
    my ($stored) = grep { (EBTest::json_decode($_->[1]{event}) // {})->{id} eq $eid }
                   @{ entries($redis, 'eb:{hr}:events') };
    my $tp = (EBTest::json_decode($stored->[1]{event}) // {})->{traceparent} // '';
    like($tp, qr/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'trace: the event has a traceparent');
    ($rc, $out) = ebd_run($redis, 'trace', '--bus', 'hr', '--event', $eid);
    like($out, qr/accepted\s+source my\.dingtalk .*entry \S+  traceparent \Q$tp\E$/m,
         'trace: the accepted line carries the traceparent');
    like($out, qr/delivered\s+target chain\s.*rule new-employee  traceparent \Q$tp\E$/m,
         'trace: the attempt line carries the traceparent');
    my ($att) = grep { $_->[1]{event} eq $eid } @{ entries($redis, 'eb:{hr}:trace') };
    is($att->[1]{traceparent}, $tp, 'trace: the attempt\'s entry has a traceparent field');

    # a sender's traceparent, through to the range listing
    my $TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    my $r2 = $ngx->request(method => 'POST', path => '/hr', body => $ding,
                           headers => [ 'Content-Type' => 'application/json',
                                        traceparent => $TP ]);
    my $eid2 = EBTest::json_decode($r2->{body} // '')->{eventId} // '';
    ok(wait_for(sub { grep { $_->[1]{event} eq $eid2 } @{ entries($redis, 'eb:{hr}:trace') } }, 10),
       'trace: the second event delivered');
    ($rc, $out) = ebd_run($redis, 'trace', '--bus', 'hr', '--since', '-1m', '--target', 'chain');
    like($out, qr/^.*event \Q$eid2\E\s+rule new-employee  traceparent \Q$TP\E$/m,
         'trace: a time range, with the sender\'s traceparent');
    like($out, qr/^.*event \Q$eid\E\s+rule new-employee  traceparent \Q$tp\E$/m,
         'trace: a time range, each event\'s own');

    ($rc, $out) = ebd_run($redis, 'trace', '--bus', 'hr', '--event', 'no-such-event');
    is($rc, 1, 'trace: an unknown event exits 1');
    ($rc, $out) = ebd_run($redis, 'trace', '--bus', 'hr', '--since', 'yesterday');
    is($rc, 2, 'trace: a bad time exits 2');
}

# --- 1b. chaining buses: a redis target into another bus's events stream ------

{
    my $r = post($ngx, '/hr', '{"kind":"tobus","n":"42"}');
    my $id = $r->{json}{eventId};
    ok(wait_for(sub { @{ entries($redis, 'out:chained') } == 1 }, 10),
       'chained: the event went through bus hr, then bus chained, to its target');
    is(entries($redis, 'out:chained')->[0][1]{event}, '42', 'chained: with the second bus\'s transform');
    my $ev = entries($redis, 'eb:{chained}:events')->[0][1] // {};
    is(EBTest::json_decode($ev->{event} // '')->{id}, $id, 'chained: the same event in eb:{chained}:events');
    is($ev->{rules}, 'from-hr', 'chained: matched against the second bus\'s rules');
    is($ev->{from}, 'hr/tobus', 'chained: and says where it came from');
    my ($rc, $out) = ebd_run($redis, 'trace', '--bus', 'chained', '--event', $id);
    like($out, qr/accepted .*rules from-hr.*\n.*delivered\s+target csink/s, 'chained: traced in the second bus');

    my $loop = $JSON->decode($JSON->encode($cfg));
    push @{ $loop->{buses}{chained}{rules}{'from-hr'}{targets} }, { target => 'tobus' };
    write_file("$dir/loop.json", $JSON->encode($loop));
    ($rc, $out) = ebd_run($redis, '-c', "$dir/loop.json");
    is($rc, 1, 'chained: a bus that sends back to the target is refused');
    like($out, qr/target tobus: stream "eb:\{chained\}:events": rule "from-hr" of bus "chained" sends back to this target: a loop/,
         'chained: and the message says why');
}

# --- 2. a permanent error: dead letter at once, then redrive ------------------

$redis->cmd('SET', 'out:typed', 'a string, not a stream');
$r = post($ngx, '/hr', '{"kind":"typed","n":1}');
is($r->{status}, 200, 'typed event accepted');
ok(wait_for(sub { @{ entries($redis, 'eb:{hr}:dlq:typed') } == 1 }, 10), 'WRONGTYPE: dead-lettered');
{
    my $d = entries($redis, 'eb:{hr}:dlq:typed')->[0][1] // {};
    is($d->{attempts}, 1, 'dead letter: after one attempt (no retry for a permanent error)');
    like($d->{error}, qr/WRONGTYPE/, 'dead letter: the last error');
    is($d->{rule}, 'typed', 'dead letter: the rule');
    is($d->{target}, 'typed', 'dead letter: the target');
    is(EBTest::json_decode($d->{event})->{id}, $r->{json}{eventId}, 'dead letter: the event');
    ok(wait_for(sub { pending_count($redis, 'eb:{hr}:target:typed') == 0 }, 5),
       'dead letter: the entry is acknowledged');

    $redis->cmd('DEL', 'out:typed');
    my ($rc, $out) = ebd_run($redis, '-c', $cfg_path, 'redrive', 'hr', 'typed');
    is($rc, 0, 'redrive exits 0') or diag $out;
    like($out, qr/redriven 1 dead letter from eb:\{hr\}:dlq:typed/, 'redrive says what it moved');
    is($redis->xlen('eb:{hr}:dlq:typed'), 0, 'redrive: the dead-letter stream is empty');
    ok(wait_for(sub { @{ entries($redis, 'out:typed') } == 1 }, 10), 'redrive: delivered');
    ($rc, $out) = ebd_run($redis, '-c', $cfg_path, 'redrive', 'hr', 'nosuch');
    is($rc, 1, 'redrive: an unknown target is refused');
    like($out, qr/no target "nosuch"/, 'redrive: and says so');
}

# --- 3. target down, then up; giving up; discarding ----------------------------

$r = post($ngx, '/hr', '{"kind":"remote","n":1}');
my $remote_id = $r->{json}{eventId};
sleep 0.5;
like($ebd->log, qr/target remote: event \Q$remote_id\E attempt \d+ failed .*retry in \d+ ms/,
     'target down: the attempt failed and is retried');
my $redis2 = EBTest::Redis->start(port => $port2, password => $SECRET);
ok(wait_for(sub { @{ $redis2->xrange('out:remote') } == 1 }, 10), 'target up: delivered after retries');

$r = post($ngx, '/hr', '{"kind":"dead","n":1}');
my $dead_id = $r->{json}{eventId};
ok(wait_for(sub { @{ entries($redis, 'eb:{hr}:dlq:dead') } == 1 }, 10), 'retries exhausted: dead-lettered');
{
    my $d = entries($redis, 'eb:{hr}:dlq:dead')->[0][1] // {};
    is($d->{attempts}, 3, 'dead letter after 1 + 2 retries');
    like($d->{error}, qr/gave up after 3 attempt/, 'dead letter says it gave up');
}
ok(wait_for(sub { $ebd->log =~ /target dropper: gave up on event \Q$dead_id\E .*discarded/ }, 10),
   'dead_letter false: given up and discarded, as logged');
is($redis->xlen('eb:{hr}:dlq:dropper'), 0, 'dead_letter false: no dead-letter stream');
ok(wait_for(sub { pending_count($redis, 'eb:{hr}:target:dropper') == 0 }, 5),
   'dead_letter false: the entry is acknowledged');

# --- 4. fault tolerance NONE: blocked while down, order kept -----------------

$redis2->stop;
for my $i (1 .. 20) {
    post($ngx, '/hr', qq({"kind":"ordered","seq":$i}));
}
sleep 0.5;
# NONE without ordering_key: one partition, read by one process at a time
is(pending_count($redis, 'eb:{hr}:target:ordered:p:0') >= 1, 1, 'NONE: the target is down, nothing acknowledged');
$redis2 = EBTest::Redis->start(port => $port2, password => $SECRET);
ok(wait_for(sub { @{ $redis2->xrange('out:ordered') } == 20 }, 15), 'NONE: all delivered once it is up');
is(join(',', map { $_->[1]{event} } @{ $redis2->xrange('out:ordered') }),
   join(',', 1 .. 20), 'NONE: in order, each once');
is($redis->xlen('eb:{hr}:dlq:ordered'), 0, 'NONE: nothing dead-lettered');

# --- 5. kill -9 in the middle of 10,000 events ------------------------------

{
    my @cmds;
    for my $i (1 .. 10000) {
        push @cmds, [ 'XADD', 'eb:{burst}:target:sink', '*', 'rule', 'all',
                      'event', qq({"id":"b$i","source":"burst.src","data":{"i":$i}}) ];
    }
    $redis->pipeline(@cmds);
    ok(wait_for(sub { $redis->xlen('out:sink') >= 2000 }, 20), 'burst: delivery under way');
    $ebd->kill9;
    my $at_kill = $redis->xlen('out:sink');
    cmp_ok($at_kill, '<', 10000, "burst: killed (-9) after $at_kill of 10000");
    $ebd = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'c1',
                              args => [ '--claim-idle', '60s' ]);
    ok(wait_for(sub { pending_count($redis, 'eb:{burst}:target:sink') == 0
                      && $redis->xlen('out:sink') >= 10000 }, 60),
       'burst: restarted, the rest delivered');
    my %seen;
    $seen{ EBTest::json_decode($_->[1]{event})->{id} }++ for @{ $redis->xrange('out:sink') };
    is(scalar(keys %seen), 10000, 'burst: every one of the 10,000 events delivered');
    my $dups = grep { $_ > 1 } values %seen;
    diag "burst: $dups duplicate(s) after kill -9 (at least once: in flight when killed)";
    cmp_ok($dups, '<=', 64 * 3, 'burst: duplicates bounded by what was in flight or read ahead');
}

# --- 6. another consumer takes over a dead one's entries -----------------------

{
    for my $i (1 .. 50) {
        $redis->cmd('XADD', 'eb:{claim}:target:later', '*', 'rule', 'all',
                    'event', qq({"id":"c$i","source":"claim.src"}));
    }
    ok(wait_for(sub { $ebd->log =~ /target later: event c\d+ attempt \d+ failed/ }, 10),
       'claim: c1 holds the entries (its target is down)');
    $ebd->kill9;
    my $redis3 = EBTest::Redis->start(port => $port3);
    my $c2 = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'c2',
                                args => [ '--claim-idle', '500ms' ]);
    ok(wait_for(sub { @{ $redis3->xrange('out:later') } >= 50 }, 20), 'claim: c2 delivered c1\'s entries');
    like($c2->log, qr/route eb:\{claim\}:target:later: claimed \d+ entr/, 'claim: c2 says it claimed them');
    ok(wait_for(sub { pending_count($redis, 'eb:{claim}:target:later') == 0 }, 10), 'claim: nothing left pending');
    my %ids = map { EBTest::json_decode($_->[1]{event})->{id} => 1 } @{ $redis3->xrange('out:later') };
    is(scalar keys %ids, 50, 'claim: all 50 events');
    $c2->finish;
    $ebd = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'c1',
                              args => [ '--claim-idle', '60s' ]);
}

# --- 6b. keeping its entries fresh never takes back another's claim -----------

{
    # c3 alone reads this stream (its own file), holds the entry for a 5 s
    # retry wait and refreshes what it holds every 200 ms (claim-idle / 3)
    my $ccfg = { targets => { contested => {
                     type => 'redis', address => '127.0.0.1:1', stream => 'x',
                     retry => { strategy => 'backoff', attempts => 10,
                                interval => '5s', max_interval => '5s' } } },
                 buses => { contest => { rules => { all => {
                     pattern => { source => [ 'contest.src' ] },
                     targets => [ { target => 'contested' } ] } } } } };
    write_file("$dir/contest.json", $JSON->encode($ccfg));
    my $c3 = EBTest::Ebd->start(config => "$dir/contest.json", redis => $redis,
                                name => 'c3', args => [ '--claim-idle', '600ms' ]);
    my $stream = 'eb:{contest}:target:contested';
    my $id = $redis->cmd('XADD', $stream, '*', 'rule', 'all',
                         'event', '{"id":"k1","source":"contest.src"}');
    ok(wait_for(sub { $c3->log =~ /target contested: event k1 attempt 1 failed/ }, 10),
       'contested: c3 holds the entry, waiting 5 s for its retry');
    # another consumer claims it (as XAUTOCLAIM would after c3 looked dead)
    $redis->cmd('XCLAIM', $stream, 'ebd', 'intruder', '0', $id, 'JUSTID');
    ok(wait_for(sub { $c3->log =~ /entry \Q$id\E was claimed by another consumer/ }, 5),
       'contested: c3 sees it is no longer its own and lets it go');
    # three more refreshes of c3's, while the intruder keeps its claim
    # fresh as a live consumer does (an idle one c3 may claim, rightly)
    for (1 .. 7) {
        sleep 0.1;
        $redis->cmd('XCLAIM', $stream, 'ebd', 'intruder', '0', $id, 'JUSTID');
    }
    my $p = $redis->cmd('XPENDING', $stream, 'ebd', '-', '+', 10);
    is(join(',', map { $_->[1] } @$p), 'intruder',
       'contested: the entry stays with the consumer that claimed it');
    unlike($c3->log, qr/event k1 attempt 2/, 'contested: c3 does not retry it');
    $c3->finish;
}

# --- 6c. the grace time ends with a redis target's attempt in flight -----------

{
    # the target's Redis is frozen (SIGSTOP): the XADD is sent and its
    # reply never comes within the 300 ms of grace; the teardown frees
    # the item, then the connection, whose dropped reply must not end
    # the freed item's attempt (the sanitizer runs see a use after free)
    my $frozen = EBTest::Redis->start;
    my $fcfg = { targets => { frozen => {
                     type => 'redis', address => $frozen->addr, stream => 'out:frozen',
                     timeout => '30s' } },
                 buses => { freeze => { rules => { all => {
                     pattern => { source => [ 'freeze.src' ] },
                     targets => [ { target => 'frozen' } ] } } } } };
    write_file("$dir/freeze.json", $JSON->encode($fcfg));
    my $c4 = EBTest::Ebd->start(config => "$dir/freeze.json", redis => $redis,
                                name => 'c4', level => 'debug', args => [ '--grace', '300ms' ]);
    ok(wait_for(sub { $c4->log =~ /target frozen: connected|redis target frozen: connected|connected to \Q${\ $frozen->addr }\E/ }, 10),
       'frozen: ebd connected to the target\'s Redis') or diag $c4->log;
    kill 'STOP', $frozen->pid;
    $redis->cmd('XADD', 'eb:{freeze}:target:frozen', '*', 'rule', 'all',
                'event', '{"id":"f1","source":"freeze.src"}');
    # read by c4 (pending under its name): its attempt starts at once
    ok(wait_for(sub {
        my $p = $redis->cmd('XPENDING', 'eb:{freeze}:target:frozen', 'ebd', '-', '+', 10);
        ref $p eq 'ARRAY' && @$p == 1 && $p->[0][1] eq 'c4' }, 10),
       'frozen: c4 read the entry, the attempt is in flight') or diag $c4->log;
    sleep 0.2;
    is($c4->stop, 0, 'frozen: SIGTERM with the attempt in flight past the grace time: exit 0');
    like($c4->log, qr/still in flight after 300 ms/, 'frozen: ebd says the attempt was still in flight');
    is(join("\n", $c4->log_problems), '', 'frozen: no sanitizer report, no error');
    kill 'CONT', $frozen->pid;
    is(pending_count($redis, 'eb:{freeze}:target:frozen'), 1, 'frozen: the entry stays pending');
}

# --- 6d. attempt counts and due times survive kill -9 and a claim ---------------

{
    my $port5 = EBTest::free_port();
    my $rcfg = { targets => { flaky => {
                     type => 'redis', address => "127.0.0.1:$port5", stream => 'out:flaky',
                     retry => { strategy => 'backoff', attempts => 5,
                                interval => '2s', max_interval => '2s' } } },
                 buses => { resume => { rules => { all => {
                     pattern => { source => [ 'resume.src' ] },
                     targets => [ { target => 'flaky' } ] } } } } };
    write_file("$dir/resume.json", $JSON->encode($rcfg));
    my $stream = 'eb:{resume}:target:flaky';
    my $rkey = 'eb:{resume}:retry:flaky';
    my @args = (config => "$dir/resume.json", redis => $redis);
    my $c5 = EBTest::Ebd->start(@args, name => 'c5', args => [ '--claim-idle', '60s' ]);
    my $id = $redis->cmd('XADD', $stream, '*', 'rule', 'all',
                         'event', '{"id":"r1","source":"resume.src"}');
    ok(wait_for(sub { ($redis->cmd('HGET', $rkey, $id) // '') =~ /^1 \d+$/ }, 10),
       'resume: attempt 1 failed, its count and due time saved in Redis');
    $c5->kill9;
    $c5 = EBTest::Ebd->start(@args, name => 'c5', args => [ '--claim-idle', '60s' ]);
    ok(wait_for(sub { $c5->log =~ /entry \Q$id\E resumes after attempt 1, its retry not due yet/ }, 10),
       'resume: after kill -9 and a restart, the entry goes on after attempt 1') or diag $c5->log;
    ok(wait_for(sub { ($redis->cmd('HGET', $rkey, $id) // '') =~ /^2 / }, 10),
       'resume: its next attempt is number 2');
    my @t = grep { $_->[1]{event} eq 'r1' } @{ entries($redis, 'eb:{resume}:trace') };
    is(join(',', map { $_->[1]{attempt} } @t), '1,2', 'resume: the trace shows attempts 1 and 2');
    my ($t1) = $t[0][0] =~ /^(\d+)/;
    my ($t2) = ($t[1][0] // '') =~ /^(\d+)/;
    cmp_ok(($t2 // 0) - $t1, '>=', 1800, 'resume: attempt 2 waited for its 2 s, not at once after the restart');

    # another consumer claims it (c5 is gone): it goes on after attempt 2
    $c5->kill9;
    my $c6 = EBTest::Ebd->start(@args, name => 'c6', args => [ '--claim-idle', '500ms' ]);
    ok(wait_for(sub { $c6->log =~ /entry \Q$id\E resumes after attempt 2/ }, 10),
       'resume: claimed by another consumer, the entry goes on after attempt 2') or diag $c6->log;
    my $out = EBTest::Redis->start(port => $port5);
    ok(wait_for(sub { @{ $out->xrange('out:flaky') } == 1 }, 10), 'resume: delivered once the target is back');
    @t = grep { $_->[1]{event} eq 'r1' } @{ entries($redis, 'eb:{resume}:trace') };
    is($t[-1][1]{outcome}, 'delivered', 'resume: the last attempt delivered it');
    cmp_ok($t[-1][1]{attempt}, '>=', 3, 'resume: as attempt 3 or later, not 1');
    ok(wait_for(sub { !$redis->cmd('HEXISTS', $rkey, $id) }, 5), 'resume: the saved state is deleted once delivered');
    $c6->finish;
}

# --- 6e. entries held for retries are bounded in bytes (memory_mb) ------------

{
    my $port6 = EBTest::free_port();
    my $mport = EBTest::free_port();
    my $mcfg = { targets => { big => {
                     type => 'redis', address => "127.0.0.1:$port6", stream => 'out:big',
                     memory_mb => 1, concurrency => 4,
                     retry => { strategy => 'backoff', attempts => 1000,
                                interval => '300ms', max_interval => '300ms' } } },
                 buses => { mem => { rules => { all => {
                     pattern => { source => [ 'mem.src' ] },
                     targets => [ { target => 'big' } ] } } } } };
    write_file("$dir/mem.json", $JSON->encode($mcfg));
    # 40 events of 100 kB: about 8 MB held if ebd kept them all
    my $pad = 'x' x 100_000;
    for my $i (1 .. 40) {
        $redis->cmd('XADD', 'eb:{mem}:target:big', '*', 'rule', 'all',
                    'event', qq({"id":"m$i","source":"mem.src","data":"$pad"}));
    }
    my $c7 = EBTest::Ebd->start(config => "$dir/mem.json", redis => $redis, name => 'c7',
                                args => [ '--claim-idle', '1s', '--metrics', "127.0.0.1:$mport" ]);
    ok(wait_for(sub { $c7->log =~ /target big: entries held for retries exceed its memory_mb \(1 MiB\)/ }, 10),
       'memory_mb: over 1 MiB of retries, ebd says further ones wait in Redis') or diag $c7->log;
    my $max = 0;
    for (1 .. 20) {
        my $m = `curl -s --max-time 2 http://127.0.0.1:$mport/metrics`;
        my ($w) = $m =~ /^ebd_retry_waiting_entries\{bus="mem",target="big"\} (\d+)/m;
        $max = $w if defined $w && $w > $max;
        sleep 0.1;
    }
    cmp_ok($max, '<=', 8, "memory_mb: at most 8 of the 40 held for their retry at once (seen: $max)");
    my $out = EBTest::Redis->start(port => $port6);
    ok(wait_for(sub { @{ $out->xrange('out:big') } >= 40 }, 30),
       'memory_mb: once the target is back, all 40 delivered (those left in Redis claimed back)')
        or diag scalar @{ $out->xrange('out:big') };
    my %ids = map { EBTest::json_decode($_->[1]{event})->{id} => 1 } @{ $out->xrange('out:big') };
    is(scalar keys %ids, 40, 'memory_mb: every one of the 40');
    ok(wait_for(sub { pending_count($redis, 'eb:{mem}:target:big') == 0 }, 10), 'memory_mb: nothing left pending');
    $c7->finish;
}

# --- 7. SIGTERM while delivering, Redis crash with AOF ---------------------

{
    my @cmds;
    for my $i (1 .. 3000) {
        push @cmds, [ 'XADD', 'eb:{burst}:target:sink', '*', 'rule', 'all',
                      'event', qq({"id":"t$i","source":"burst.src"}) ];
    }
    $redis->pipeline(@cmds);
    sleep 0.05;
    my $st = $ebd->stop;
    is($st, 0, 'SIGTERM: ebd exits 0');
    like($ebd->log, qr/ebd: stopped \(delivered \d+/, 'SIGTERM: it says what it did');
    $ebd = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'c1');
    ok(wait_for(sub { pending_count($redis, 'eb:{burst}:target:sink') == 0
                      && (grep { /"id":"t/ } map { $_->[1]{event} } @{ $redis->xrange('out:sink') }) >= 3000 }, 60),
       'SIGTERM: after a restart every event is delivered');
}

{
    # events accepted by nginx (2xx) while Redis crashes and comes back
    my $pid = fork // die;
    if ($pid == 0) {
        open my $log, '>', "$dir/accepted" or POSIX::_exit(1);
        $log->autoflush(1);
        # for 4 s: before the crash, during the outage (503s), after
        my ($i, $end) = (0, time + 4);
        while (time < $end) {
            my $x = post($ngx, '/burst', sprintf('{"n":%d}', ++$i));
            print {$log} "$x->{json}{eventId}\n" if $x->{status} == 200;
        }
        POSIX::_exit(0);
    }
    push @children, $pid;
    sleep 0.5;
    $redis->kill9;
    sleep 0.3;
    $redis->restart;
    waitpid $pid, 0;
    @children = grep { $_ != $pid } @children;
    open my $fh, '<', "$dir/accepted" or die;
    chomp(my @acc = <$fh>);
    cmp_ok(scalar @acc, '>', 10, scalar(@acc) . ' events accepted around the Redis crash');
    ok(wait_for(sub { pending_count($redis, 'eb:{burst}:target:sink') == 0
                      && $redis->xlen('eb:{burst}:target:sink') <= 1 }, 60),
       'Redis crash: ebd reconnected and drained the stream');
    my %out = map { (EBTest::json_decode($_->[1]{event}) // {})->{id} => 1 }
              @{ $redis->xrange('out:sink') };
    my @lost = grep { !$out{$_} } @acc;
    is(scalar @lost, 0, 'Redis crash (AOF, fsync always): no acknowledged event lost')
        or diag "lost: @lost[0 .. ($#lost < 9 ? $#lost : 9)]";
}

# --- 8. SIGHUP: reload ----------------------------------------------------------

my $patient_id;
{
    # an event waiting 3 s for its retry when the reload comes
    my $r = post($ngx, '/hr', '{"kind":"patient"}');
    $patient_id = $r->{json}{eventId};
    ok(wait_for(sub { $ebd->log =~ /target patient: event \Q$patient_id\E attempt 1 failed/ }, 5),
       'patient: first attempt failed, retry in 3 s');
}
{
    my $c = $JSON->decode($JSON->encode($cfg));
    $c->{buses}{hr}{rules}{'new-employee'}{targets}[0]{transform}{template} = 'v2 ${name}';
    write_file($cfg_path, $JSON->encode($c));
    $ebd->reload;
    ok(wait_for(sub { $ebd->log =~ /configuration reloaded/ }, 10), 'SIGHUP: reloaded');
    my $n = @{ entries($redis, 'out:chain') };
    post($ngx, '/hr', $ding);
    ok(wait_for(sub { @{ entries($redis, 'out:chain') } == $n + 1 }, 10), 'after the reload: delivered');
    is(Encode::decode_utf8(entries($redis, "out:chain")->[-1][1]{event}), "v2 $body->{name}", 'after the reload: the new transform');

    # the waiting retry survived the reload: attempt 2, about 3 s after 1
    ok(wait_for(sub { $ebd->log =~ /target patient: event \Q$patient_id\E attempt 2 failed/ }, 10),
       'reload: the waiting event is retried with its next attempt number');
    my @t = grep { $_->[1]{event} eq $patient_id } @{ entries($redis, 'eb:{hr}:trace') };
    is(join(',', map { $_->[1]{attempt} } @t[0, 1]), '1,2', 'reload: trace shows attempts 1 then 2');
    my ($t1) = $t[0][0] =~ /^(\d+)/;
    my ($t2) = ($t[1][0] // '') =~ /^(\d+)/;
    cmp_ok(($t2 // 0) - $t1, '>=', 2800, 'reload: and the retry kept its 3 s wait');

    write_file($cfg_path, '{"buses": {');
    $ebd->reload;
    ok(wait_for(sub { $ebd->log =~ /reload refused, keeping the running configuration: .*buses\.json/ }, 10),
       'SIGHUP with a broken file: refused, with the file named');
    post($ngx, '/hr', $ding);
    ok(wait_for(sub { @{ entries($redis, 'out:chain') } == $n + 2 }, 10), 'still delivering with the old configuration');
    ok($ebd->alive, 'ebd still runs');

    # a file that passes its checks, but a target that cannot open: its
    # password comes from a variable that is not set
    my $c2 = $JSON->decode($JSON->encode($cfg));
    delete $c2->{targets}{remote}{password};
    $c2->{targets}{remote}{password_env} = 'EB072_NOT_SET';
    write_file($cfg_path, $JSON->encode($c2));
    my ($rc0, $out0) = ebd_run($redis, '-t', '-c', $cfg_path);
    is($rc0, 0, 'ebd -t: the file itself passes');
    $ebd->reload;
    ok(wait_for(sub { $ebd->log =~ /target remote: connection|target remote: password_env: the environment variable "EB072_NOT_SET" is not set/
                      && $ebd->log =~ /reload of \S+ failed, keeping the running configuration/ }, 15),
       'SIGHUP, a target that cannot open: the running configuration stays, the reason logged')
        or diag $ebd->log;
    post($ngx, '/hr', $ding);
    ok(wait_for(sub { @{ entries($redis, 'out:chain') } == $n + 3 }, 10),
       'still delivering with the running configuration');
    ok($ebd->alive, 'ebd still runs after the failed reload');

    # two sources for one secret: refused by the file's checks
    $c2->{targets}{remote}{password} = $SECRET;
    write_file($cfg_path, $JSON->encode($c2));
    ($rc0, $out0) = ebd_run($redis, '-t', '-c', $cfg_path);
    is($rc0, 1, 'ebd -t: password and password_env together: refused');
    like($out0, qr/targets\.remote.*"password", "password_env" and "password_file" exclude each other/,
         'the message names the target and the keys');

    write_file($cfg_path, '{"buses": {');
    for my $w (1, 2) {
        my ($rc, $out) = ebd_run($redis, '-c', $cfg_path, '-w', $w);
        is($rc, 1, "a broken file at start (-w $w): exit 1");
        like($out, qr/\Q$cfg_path\E:1:\d+: invalid JSON/, "-w $w: the message names the file and the place");
    }
    my ($rc, $out) = ebd_run($redis, '--no-such-option');
    is($rc, 2, 'an unknown option: exit 2');
    ($rc, $out) = ebd_run($redis, '-w', '0');
    like($out, qr/-w: 1 to 64/, '-w 0 refused');
}

# --- 9. -w: worker processes under a master -----------------------------

{
    $ebd->finish;
    write_file($cfg_path, $JSON->encode($cfg));
    $ebd = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'm',
                              args => [ '-w', '2' ]);
    ok(wait_for(sub { $ebd->log =~ /consumer "m-1"/ && $ebd->log =~ /consumer "m-2"/ }, 10),
       '-w 2: two workers, consumers m-1 and m-2') or diag $ebd->log;
    my @workers = grep { /\d/ } split /\s+/, `pgrep -P ${\ $ebd->pid}`;
    is(scalar @workers, 2, '-w 2: the master has two children');
    my $before = grep { /"id":"w/ } map { $_->[1]{event} } @{ $redis->xrange('out:sink') };
    my @cmds = map { [ 'XADD', 'eb:{burst}:target:sink', '*', 'rule', 'all',
                       'event', qq({"id":"w$_","source":"burst.src"}) ] } 1 .. 4000;
    $redis->pipeline(@cmds);
    kill 'KILL', $workers[0];
    ok(wait_for(sub { $ebd->log =~ /worker m-\d \(pid $workers[0]\) killed by signal 9; starting it again/ }, 10),
       '-w 2: a worker killed by signal 9 is started again');
    ok(wait_for(sub { pending_count($redis, 'eb:{burst}:target:sink') == 0
                      && (grep { /"id":"w/ } map { $_->[1]{event} } @{ $redis->xrange('out:sink') }) >= 4000 }, 60),
       '-w 2: every event delivered');
    my %w = map { (EBTest::json_decode($_->[1]{event}) // {})->{id} => 1 }
            grep { $_->[1]{event} =~ /"id":"w/ } @{ $redis->xrange('out:sink') };
    is(scalar keys %w, 4000, '-w 2: all 4000 distinct events');
    my $pid = $ebd->pid;
    is($ebd->stop, 0, '-w 2: SIGTERM: the master exits 0');
    is(`pgrep -P $pid` // '', '', '-w 2: no worker left');
    like($ebd->log, qr/master: all workers stopped/, '-w 2: the master says so');
    $ebd = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'c1');
}

# --- 10. secrets ---------------------------------------------------------------

{
    my $all = $ebd->log;
    my $trace = join "\n", map { join ' ', %{ $_->[1] } } @{ entries($redis, 'eb:{hr}:trace') };
    my $dlq = join "\n", map { join ' ', %{ $_->[1] } }
              map { @{ entries($redis, "eb:{hr}:dlq:$_") } } qw(typed dead remote ordered);
    unlike($all, qr/\Q$SECRET\E/, 'no password in the log');
    unlike($trace, qr/\Q$SECRET\E/, 'no password in the trace');
    unlike($dlq, qr/\Q$SECRET\E/, 'no password in dead letters');
}

$ebd->finish;
$ngx->finish;
done_testing;
