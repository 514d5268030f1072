#!/usr/bin/perl
# End to end on a real Redis Cluster (3 primaries, 3 replicas): HTTP
# senders -> nginx (eventbridge_redis cluster, eventbridge_redis_wait 1)
# -> three buses on three primaries -> ebd --cluster -> an HTTP target
# that records the ce-id of every event it receives. Under steady load on
# all three buses:
#   1. kill -9 of the primary that owns one bus's slot: a replica takes
#      over, the edge and ebd follow it without a reload; every event
#      nginx acknowledged (2xx) reaches the target (lost 0), at most 0.1 %
#      twice, every request answered (2xx or 503).
#   2. one bus's slot migrated to another primary: nothing lost, no
#      request waits beyond eventbridge_redis_timeout, later requests go
#      straight to the new owner.
# Figures (acknowledged, delivered, lost, duplicates, 503s) go to diag.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);
use EBTest::RedisCluster;
use EBTest::Load;
use EBTest::Peer;

my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;
plan skip_all => 'redis-server 7 not installed'
    unless `redis-server --version 2>/dev/null` =~ /v=(\d+)/ && $1 >= 7;

my $JSON = JSON::PP->new->utf8->canonical;
my $T0 = time;
my $TIMEOUT = 3;            # eventbridge_redis_timeout, seconds

my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 1,
                                    node_timeout => 1000);
my @bus = $c->bus_names(3);
my %slot = map { $_ => $c->slot_of("{$_}") } @bus;
note("buses @bus on slots @slot{@bus}, primaries "
     . join ' ', map { $c->primary_of_slot($slot{$_})->port } @bus);

my $peer = EBTest::Peer->start(control => { default => 200 });
my $cfg = {
    targets => {
        hook => { type => 'http', url => $peer->url('/hook'),
                  retry => { strategy => 'backoff', attempts => 1000,
                             interval => '50ms', max_interval => '200ms' } },
    },
    buses => { map { $_ => { rules => {
        all => { pattern => { source => [{ prefix => '' }] },
                 targets => [ { target => 'hook' } ] } } } } @bus },
};

my $seeds = join ' ', ($c->seeds)[0 .. 2];
my $ngx = EBTest::Nginx->new(workers => 2, http => <<"EOF");
    eventbridge_redis cluster $seeds;
    eventbridge_redis_timeout ${TIMEOUT}s;
    eventbridge_redis_wait 1;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /$bus[0] { eventbridge_source e2e.src bus=$bus[0]; }
        location /$bus[1] { eventbridge_source e2e.src bus=$bus[1]; }
        location /$bus[2] { eventbridge_source e2e.src bus=$bus[2]; }
        location /status { eventbridge_status; }
    }
EOF
my $cfg_path = $ngx->dir . '/buses.json';
write_file($cfg_path, $JSON->encode($cfg));
$ngx->start;

my $ebd = EBTest::Ebd->start(config => $cfg_path,
                             redis_addr => join(',', ($c->seeds)[0 .. 2]),
                             name => 'e2e',
                             args => [ '--cluster', '--claim-idle', '3s',
                                       '--block', '500ms',
                                       '--redis-timeout', "${TIMEOUT}s" ]);
ok($ebd->alive && $ebd->log =~ /ebd: ready/, 'ebd ready on the cluster')
    or BAIL_OUT("ebd did not start:\n" . $ebd->log);
my $ebd_pid = $ebd->pid;

sub post {
    my ($path) = @_;
    return $ngx->request(method => 'POST', path => $path,
                         headers => ['Content-Type' => 'application/json'],
                         body => '{"n":1}', timeout => 10);
}


# event id => deliveries the target answered 200
sub delivered { $peer->delivered_ids(path => '/hook') }

sub pending {
    my ($b) = @_;
    my $k = "eb:{$b}:target:hook";
    my $r = eval { $c->cmd_key($k, 'XPENDING', $k, 'ebd') };
    return ref $r eq 'ARRAY' ? $r->[0] : -1;
}

sub load {
    my (%o) = @_;
    return { map {
        my $b = $_;
        ($b => EBTest::Load->start(
            url => 'http://127.0.0.1:' . $ngx->port . "/$b",
            rate => $o{rate}, seconds => $o{seconds}, concurrency => 100,
            timeout => $TIMEOUT + 5, body => sub { qq({"bus":"$b","i":$_[0]}) }))
    } @bus };
}

# Waits until every acknowledged id is delivered and nothing is pending
# (a redelivery after --claim-idle would come before that), then prints
# and returns (acknowledged, lost, duplicates).
sub figures {
    my ($what, $res, $before) = @_;
    my @ids = map { @{ $res->{$_}{ids} } } @bus;
    my $t = time;
    wait_for(sub { my $d = delivered(); !grep { !$d->{$_} } @ids }, 40);
    my $t_all = time - $t;
    wait_for(sub { !grep { pending($_) != 0 } @bus }, 20);
    my $d = delivered();
    my $lost = grep { !$d->{$_} } @ids;
    my $dups = 0;
    $dups += $d->{$_} - 1 for grep { $d->{$_} } @ids;
    my %ack = map { $_ => 1 } @ids;
    my $extra = grep { !$ack{$_} && !$before->{$_} } keys %$d;
    my $s503 = 0;
    $s503 += $res->{$_}{s503} for @bus;
    for my $b (@bus) {
        diag("$what, bus $b: " . EBTest::Load->summary($res->{$b}));
    }
    diag(sprintf '%s: acknowledged %d, delivered %d (all %.1f s after the load), '
         . 'lost %d (%.3f %%), duplicates %d (%.3f %%), 503s %d, not '
         . 'acknowledged but delivered %d', $what, scalar @ids,
         scalar(grep { $d->{$_} } @ids), $t_all, $lost,
         @ids ? 100 * $lost / @ids : 0, $dups, @ids ? 100 * $dups / @ids : 0,
         $s503, $extra);
    diag("$what: " . dup_origin($d, \@ids, sub { $c->xrange($_[0]) }))
        if $dups;
    return (scalar @ids, $lost, $dups);
}

# Where the duplicates come from: an event the edge stored twice (a
# transaction resent after a lost connection) or one ebd delivered again
# (an XACK lost with the old primary).
sub dup_origin {
    my ($d, $ids, $xrange) = @_;
    my %stored = map { %{ EBTest::event_ids($xrange->("eb:{$_}:events")) } } @bus;
    my @dup = grep { ($d->{$_} // 0) > 1 } @$ids;
    my $twice = grep { ($stored{$_} // 0) > 1 } @dup;
    return sprintf 'duplicates: %d stored twice by the edge, %d delivered '
        . 'again by ebd', $twice, @dup - $twice;
}


# --- 0. one event per bus, through to the target -----------------------------

{
    my @ids;
    for my $b (@bus) {
        my $r;
        wait_for(sub { $r = post("/$b"); $r->{status} == 200 }, 10);
        is($r->{status}, 200, "bus $b: 200");
        push @ids, $r->{json}{eventId} // "none-$b";
    }
    ok(wait_for(sub { my $d = delivered(); !grep { !$d->{$_} } @ids }, 15),
       'one event per bus delivered to the target (by ce-id)');
    ok(wait_for(sub { !grep { pending($_) != 0 } @bus }, 10),
       'and acknowledged on each bus\'s primary');
}

# --- 1. kill -9 the primary of a bus under load --------------------------------

{
    my $b = $bus[0];
    my $before = delivered();
    # 15 s of load, the kill at 3 s: a failover that takes up to ~10 s
    # still leaves traffic for the new primary
    my $load = load(rate => 60, seconds => 15);
    sleep 3;
    my $old = $c->kill9_primary_of_slot($slot{$b});
    my $tk = $load->{$b}->elapsed;      # the primary is gone (waitpid)
    my $new = $c->wait_failover($slot{$b}, $old, 25);
    my $tf = $load->{$b}->elapsed;      # the replica is the primary
    ok($new, sprintf 'failover: %s took over from %s after %.1f s',
       $new ? $new->addr : '-', $old->addr, $load->{$b}->elapsed - $tk);
    # the killed node comes back empty and replicates the new primary:
    # WAIT 1 can be met again on that bus
    $old->restart;
    my %res = map { $_ => $load->{$_}->wait } @bus;

    my $first = EBTest::Load->first_ok_after($res{$b}, $tk + 0.5);
    ok(defined $first, "failover: bus $b answers 2xx again without a reload");
    diag(sprintf 'failover: bus %s: first 2xx answer %.2f s after the kill',
         $b, (EBTest::Load->first_answer_after($res{$b}, $tk) // 99) - $tk);
    is(scalar(grep { $res{$_}{errors} + $res{$_}{other} } @bus), 0,
       'failover: every request answered, 2xx or 503');
    my $max = 0;
    for (@bus) { $max = $res{$_}{max} if $res{$_}{max} > $max }
    cmp_ok($max, '<', 1000 * ($TIMEOUT + 1),
           'failover: every answer within eventbridge_redis_timeout (+1 s)');
    my ($acked, $lost, $dups) = figures('failover', \%res, $before);
    # substance: events acknowledged by the old primary just before the
    # kill and by the new one after the failover, whatever it took
    cmp_ok(EBTest::Load->oks_between($res{$b}, 0, $tk), '>=', 100,
           "failover: bus $b: >= 100 events acknowledged before the kill");
    cmp_ok(EBTest::Load->oks_between($res{$b}, $tf), '>=', 100,
           "failover: bus $b: >= 100 events acknowledged after the failover");
    is($lost, 0, 'failover: every acknowledged event delivered');
    cmp_ok($dups, '<=', 0.001 * $acked, 'failover: duplicates <= 0.1 %');
    is($ebd->pid, $ebd_pid, 'failover: the same ebd process');
    ok($ebd->alive, 'failover: ebd alive');
}

# --- 2. migrate a bus's slot to another primary under load ----------------------

{
    my $b = $bus[1];
    my $from = $c->primary_of_slot($slot{$b});
    my $to = $c->primary_of_slot($slot{ $bus[2] });
    my $before = delivered();
    my $load = load(rate => 40, seconds => 8);
    sleep 1;
    my $moved = $c->migrate_slot($slot{$b}, $to, pause => 0.5,
                                 keys_per_step => 1);
    my %res = map { $_ => $load->{$_}->wait } @bus;
    is($c->primary_of_slot($slot{$b})->port, $to->port,
       sprintf 'migration: slot %d moved from %d to %d (%d keys)', $slot{$b},
       $from->port, $to->port, $moved);
    is(scalar(grep { $res{$_}{errors} + $res{$_}{other} } @bus), 0,
       'migration: every request answered');
    my $max = 0;
    for (@bus) { $max = $res{$_}{max} if $res{$_}{max} > $max }
    cmp_ok($max, '<', 1000 * $TIMEOUT + 500,
           'migration: no request waited beyond eventbridge_redis_timeout');
    my ($acked, $lost, $dups) = figures('migration', \%res, $before);
    is($lost, 0, 'migration: every acknowledged event delivered');

    # the map is refreshed: later requests go to the new owner at once
    sleep 0.5;
    my $m0 = $ngx->metrics;
    my @ids;
    for (1 .. 10) {
        my $r = post("/$b");
        push @ids, $r->{json}{eventId} if $r->{status} == 200;
    }
    my $m1 = $ngx->metrics;
    is(scalar @ids, 10, 'after the migration: 200s');
    my %on = map {
        ((EBTest::json_decode($_->[1]{event} // '') // {})->{id} // '') => 1
    } @{ $to->xrange("eb:{$b}:events") };
    is(scalar(grep { $on{$_} } @ids), 10,
       'after the migration: the events are on the new owner ' . $to->addr);
    # a worker that sent nothing after the slot's last step learns the
    # new owner from one MOVED; none is redirected twice, none is ASKed
    my %d = map { $_ => ($m1->{"eventbridge_redis_redirections_total{kind=\"$_\"}"} // 0)
                        - ($m0->{"eventbridge_redis_redirections_total{kind=\"$_\"}"} // 0) }
        qw(moved ask);
    cmp_ok($d{moved}, '<=', 2,
           'after the migration: at most one MOVED per worker (2 workers)');
    is($d{ask}, 0, 'after the migration: no ASK');
    ok(wait_for(sub { my $d = delivered(); !grep { !$d->{$_} } @ids }, 15),
       'after the migration: delivered by ebd');
    is($ebd->pid, $ebd_pid, 'migration: the same ebd process');
}

diag(sprintf '%.1f s in all', time - $T0);
$ebd->finish;
$ngx->finish;

done_testing;
