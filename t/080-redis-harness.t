#!/usr/bin/perl
# The harness the cluster, sentinel and watchdog tests stand on, tested
# against real servers: a Redis Cluster forms with 3 primaries serving
# all 16384 slots, a slot migrates (ASK during, MOVED after, keys kept),
# a replica takes over a primary killed with -9 and the old primary
# comes back as a replica; Sentinel fails over a killed primary; the
# proxy forwards, then black-holes the connections it has (open, silent)
# while new ones still pass; the load client keeps its rate and counts
# what it got. Times are printed with note().
use strict;
use warnings;
use Test::More;
use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for);
use EBTest::RedisCluster;
use EBTest::Sentinel;
use EBTest::Blackhole;
use EBTest::Load;
use EBTest::Peer;

for my $bin (qw(redis-server redis-cli redis-sentinel)) {
    plan skip_all => "$bin not installed"
        unless grep { -x "$_/$bin" } split /:/, $ENV{PATH};
}

# --- 1. cluster: forms, 3 primaries, every slot served ----------------------

my $t = time;
my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 1,
                                    node_timeout => 1000);
note sprintf 'cluster of 6 up in %.1f s', time - $t;

is(scalar $c->nodes, 6, '6 nodes');
is(scalar $c->seeds, 6, '6 seeds');
my @p = $c->primaries;
is(scalar @p, 3, '3 primaries');
for my $n ($c->nodes) {
    my $info = $n->cmd('CLUSTER', 'INFO');
    like($info, qr/^cluster_state:ok/m, 'cluster_state:ok on ' . $n->port);
}

# CLUSTER SLOTS: 0..16383 without a gap, on exactly those 3 primaries
my $slots = $p[0]->cmd('CLUSTER', 'SLOTS');
my ($next, %owners) = (0);
for my $r (sort { $a->[0] <=> $b->[0] } @$slots) {
    $next = -1 unless $r->[0] == $next;
    $next = $r->[1] + 1 if $next >= 0;
    $owners{ $r->[2][1] }++;
}
is($next, 16384, 'slots 0-16383 covered without a gap');
is_deeply([ sort keys %owners ], [ sort map { $_->port } @p ],
          'served by the 3 primaries');
is(scalar $c->replicas_of($p[0]), 1, 'a primary has its replica');

is($c->slot_of('{b0}'), $c->slot_of('eb:{b0}:events'), 'hash tag slot');
is($c->slot_of('foo'), 12182, 'CLUSTER KEYSLOT foo');
my @bus = $c->bus_names(3);
is(scalar @bus, 3, 'three bus names: ' . join ' ', @bus);
my %bp = map { $c->primary_of_slot($c->slot_of("{$_}"))->port => 1 } @bus;
is(scalar keys %bp, 3, 'their slots are on 3 different primaries');

my @keys = map { "eb:{$_}:events" } @bus;
for my $k (@keys) {
    $c->cmd_key($k, 'XADD', $k, '*', 'n', $_) for 1 .. 3;
}
is_deeply([ map { $c->xlen($_) } @keys ], [ 3, 3, 3 ], 'XADD via cmd_key');
is($c->xrange($keys[0])->[2][1]{n}, 3, 'xrange on the owner');
my $moved = $p[0]->cmd('XLEN', $c->primary_of_key($keys[0]) == $p[0]
                                   ? $keys[1] : $keys[0]);
like($moved->{error} // '', qr/^MOVED \d+ 127\.0\.0\.1:\d+/,
     'another primary answers MOVED');

# --- 2. slot migration: ASK while it runs, MOVED after ----------------------

{
    my $k = $keys[0];
    my $slot = $c->slot_of($k);
    my $from = $c->primary_of_slot($slot);
    my ($to) = grep { $_ != $from } $c->primaries;
    my $other = "{$bus[0]}:new";        # same slot, not yet on $from
    my $m = $c->start_migrate($slot, $to, keys_per_step => 1);
    my $ask = $from->cmd('SET', $other, 'x');
    like($ask->{error} // '', qr/^ASK $slot 127\.0\.0\.1:${\ $to->port}$/,
         'migrating: a new key in the slot is ASKed to the target');
    is($c->cmd_key($other, 'SET', $other, 'x'), 'OK', 'cmd_key follows ASK');
    is($c->cmd_key($k, 'XLEN', $k), 3, 'the old key is still on the source');
    my $steps = 0;
    $steps++ while $c->step_migrate($m);
    $c->finish_migrate($m);
    is($m->{moved}, 1, 'one key moved by MIGRATE');
    is($c->primary_of_slot($slot)->port, $to->port, 'slot now on the target');
    like($from->cmd('XLEN', $k)->{error} // '',
         qr/^MOVED $slot 127\.0\.0\.1:${\ $to->port}$/, 'source answers MOVED');
    is($c->xlen($k), 3, 'stream kept its entries');
    is($c->cmd_key($other, 'GET', $other), 'x', 'the ASKed key is there');

    # and back, with migrate_slot (pausing between steps)
    $t = time;
    is($c->migrate_slot($slot, $from, pause => 0.1), 2, 'migrate_slot back');
    note sprintf 'migrate_slot of 2 keys with pause 0.1: %.1f s', time - $t;
    is($c->primary_of_slot($slot)->port, $from->port, 'slot back home');
}

# --- 3. failover after kill -9, the old primary rejoins as a replica --------

{
    my $k = $keys[1];
    my $slot = $c->slot_of($k);
    my $old = $c->primary_of_slot($slot);
    is($old->cmd('WAIT', 1, 2000), 1, 'the replica acknowledged the writes');
    $t = time;
    my $dead = $c->kill9_primary_of_slot($slot);
    is($dead, $old, 'kill9_primary_of_slot killed the owner');
    my $new = $c->wait_failover($slot, $dead, 20);
    my $took = time - $t;
    ok($new && $new != $old, 'a replica took over the slot')
        or diag $c->_state;
    note sprintf 'cluster failover after kill -9: %.1f s', $took;
    is($c->xlen($k), 3, 'the stream survived the failover');
    $dead->restart;
    ok($c->wait_ok(20), 'old primary back, cluster ok');
    ok(wait_for(sub { ($dead->cmd('ROLE')->[0] // '') eq 'slave' }, 20),
       'the old primary is a replica now');
    is(scalar $c->primaries, 3, 'still 3 primaries');
}
$c->stop;

# --- 4. sentinel ------------------------------------------------------------

{
    $t = time;
    my $s = EBTest::Sentinel->start(replicas => 2, sentinels => 3,
                                    down_after_ms => 1000,
                                    failover_timeout_ms => 5000);
    note sprintf 'sentinel set-up (1 + 2 redis, 3 sentinels) in %.1f s',
        time - $t;
    is($s->master_name, 'mymaster', 'master name');
    is(scalar $s->sentinel_addrs, 3, '3 sentinels');
    my $old = $s->primary_addr;
    is($old, $s->primary->addr, 'sentinels name the primary');
    is(scalar $s->replicas, 2, '2 replicas');
    is($s->primary->cmd('ROLE')->[0], 'master', 'its ROLE is master');
    $s->primary->cmd('SET', 'k', 'v');
    is($s->primary->cmd('WAIT', 2, 2000), 2, 'both replicas have the key');

    $t = time;
    $s->primary->kill9;
    my $new = $s->wait_failover($old, 30);
    my $took = time - $t;
    ok($new && $new ne $old, "sentinel failover to " . ($new // 'nothing'));
    note sprintf 'sentinel failover after kill -9: %.1f s', $took;
    my $node = $s->node_by_addr($new // '');
    is($node && $node->cmd('GET', 'k'), 'v', 'the new primary has the key');
    is($s->primary_addr, $new, 'primary_addr follows');
    $s->stop;
}

# --- 5. black-hole proxy ----------------------------------------------------

{
    my $r = EBTest::Redis->start;
    my $p = EBTest::Blackhole->start(to => $r->addr);
    like($p->addr, qr/^127\.0\.0\.1:\d+$/, 'proxy address');
    my $via = bless { port => $p->port }, 'EBTest::Redis';
    is($via->cmd('PING'), 'PONG', 'forwards');
    my $big = 'x' x 300000;
    $via->cmd('SET', 'big', $big);
    ok($via->cmd('GET', 'big') eq $big, 'forwards 300 kB both ways');

    is($p->blackhole, 1, 'one connection black-holed');
    my $sock = $via->{sock};
    ok(print({$sock} "*1\r\n\$4\r\nPING\r\n"),
       'the held connection takes a write');
    my $sel = IO::Select->new($sock);
    ok(!$sel->can_read(1), 'no answer, no FIN, no RST within 1 s');

    my $via2 = bless { port => $p->port }, 'EBTest::Redis';
    is($via2->cmd('PING'), 'PONG', 'a new connection is forwarded');
    is($p->accepted, 2, 'two connections accepted');
    is($p->held, 1, 'one held');
    is($p->blackhole(new => 1), 2, 'both held after a second blackhole');
    ok(!$sel->can_read(0.2), 'the first still silent');

    # new => 1: later connections are accepted and held too
    my $s3 = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                 PeerPort => $p->port, Timeout => 2);
    ok($s3, 'a new connection is accepted');
    print {$s3} "*1\r\n\$4\r\nPING\r\n";
    ok(!IO::Select->new($s3)->can_read(0.5), 'and held: no answer');
    is($p->held, 3, 'three held');
    $p->heal;
    my $via4 = bless { port => $p->port }, 'EBTest::Redis';
    is($via4->cmd('PING'), 'PONG', 'healed: new connections forwarded');
    $p->stop;
    $r->stop;
}

# --- 6. load client ---------------------------------------------------------

{
    # plain nginx answers: this part needs no module
    local $ENV{TEST_EB_MODULE} = '';
    my $ngx = EBTest::Nginx->new(http => <<'CONF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location /ok { return 200 '{"eventId":"$request_id"}'; }
        location /busy { return 503; }
        location /slow { proxy_pass http://127.0.0.1:%%SLOW%%; }
    }
CONF
    $ngx->write_conf($ngx->{http} =~ s/%%SLOW%%/EBTest::free_port()/er);
    $ngx->start;
    my $url = 'http://127.0.0.1:' . $ngx->port;

    $t = time;
    my $l = EBTest::Load->start(url => "$url/ok", rate => 200, seconds => 1,
                                concurrency => 4,
                                body => sub { qq({"i":$_[0]}) });
    my $res = $l->wait;
    my $took = time - $t;
    note 'load /ok: ' . EBTest::Load->summary($res);
    is($res->{sent}, 200, '200 requests in 1 s at 200/s');
    is($res->{ok}, 200, 'all 2xx');
    my %u = map { $_ => 1 } @{ $res->{ids} };
    is(scalar keys %u, 200, '200 distinct eventIds');
    ok($took < 3, sprintf 'kept the rate (%.2f s)', $took);
    is_deeply([ map { $_->[0] } @{ $res->{requests} } ], [ 0 .. 199 ],
              'requests in schedule order');

    $res = EBTest::Load->start(url => "$url/busy", rate => 50, seconds => 1,
                               body => '{}')->wait;
    is($res->{s503}, 50, '503 counted');
    is(scalar @{ $res->{ids} }, 0, 'no ids from 503');
    $res = EBTest::Load->start(url => "$url/slow", rate => 20, seconds => 0.5,
                               body => '{}')->wait;
    is($res->{other}, 10, 'a 502 is "other"');
    $ngx->finish;

    # open loop: answers taking 0.5 s do not lower the rate while
    # connections are free; with too few, the rest is skipped at the end
    my $peer = EBTest::Peer->start(control => {
        default => { status => 200, delay => 0.5,
                     body => '{"eventId":"e"}' } });
    $res = EBTest::Load->start(url => $peer->url('/slow'), rate => 40,
                               seconds => 1, concurrency => 30)->wait;
    note 'load, 0.5 s answers: ' . EBTest::Load->summary($res);
    is($res->{ok}, 40, 'slow answers: all 40 sent and answered');
    ok($res->{requests}[-1][1] < 1.1,
       sprintf 'the last went out on time (%.2f s)', $res->{requests}[-1][1]);
    ok($res->{p50} >= 450, 'latency includes the delay');
    $res = EBTest::Load->start(url => $peer->url('/slow'), rate => 40,
                               seconds => 1, concurrency => 2)->wait;
    note 'load, 0.5 s answers, 2 connections: '
        . EBTest::Load->summary($res);
    ok($res->{sent} <= 8 && $res->{skipped} >= 32,
       'two connections: the rest skipped, the load ended on time');
    $peer->stop;
}

done_testing;
