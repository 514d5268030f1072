#!/usr/bin/perl
# End to end behind Redis Sentinel (1 primary, 2 replicas, 3 sentinels):
# HTTP senders -> nginx (eventbridge_redis sentinel=mymaster,
# eventbridge_redis_wait 1) -> two buses -> ebd --sentinel mymaster -> an
# HTTP target that records the ce-id of every event it receives. Under
# steady load, kill -9 of the primary: the sentinels promote a replica,
# the edge and ebd follow it without a reload or restart; every event
# nginx acknowledged (2xx) reaches the target (lost 0), at most 0.1 %
# twice, every request answered (2xx or 503). Figures go to diag.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);
use EBTest::Sentinel;
use EBTest::Load;
use EBTest::Peer;

my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;
plan skip_all => 'redis-sentinel 7 not installed'
    unless `redis-sentinel --version 2>/dev/null` =~ /v=(\d+)/ && $1 >= 7;

my $JSON = JSON::PP->new->utf8->canonical;
my $T0 = time;
my $TIMEOUT = 3;            # eventbridge_redis_timeout, seconds
my @bus = qw(s1 s2);

my $s = EBTest::Sentinel->start(replicas => 2, sentinels => 3,
                                master => 'mymaster', down_after_ms => 1000,
                                failover_timeout_ms => 3000);

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

my $sentinels = join ' ', $s->sentinel_addrs;
my $ngx = EBTest::Nginx->new(workers => 2, http => <<"EOF");
    eventbridge_redis sentinel=mymaster $sentinels;
    eventbridge_redis_timeout ${TIMEOUT}s;
    eventbridge_redis_wait 1;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /$bus[0] { eventbridge_source e2e.src bus=$bus[0]; }
        location /$bus[1] { eventbridge_source e2e.src bus=$bus[1]; }
        location /status { eventbridge_status; }
    }
EOF
my $cfg_path = $ngx->dir . '/buses.json';
write_file($cfg_path, $JSON->encode($cfg));
$ngx->start;

my $ebd = EBTest::Ebd->start(config => $cfg_path,
                             redis_addr => join(',', $s->sentinel_addrs),
                             name => 'e2e',
                             args => [ '--sentinel', 'mymaster',
                                       '--claim-idle', '3s', '--block', '500ms',
                                       '--redis-timeout', "${TIMEOUT}s" ]);
ok($ebd->alive && $ebd->log =~ /ebd: ready/, 'ebd ready behind the sentinels')
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

# entries read by ebd and not yet acknowledged, on the current primary
sub pending {
    my ($b) = @_;
    my $p = $s->primary or return -1;
    my $r = eval { $p->cmd('XPENDING', "eb:{$b}:target:hook", 'ebd') };
    delete $p->{sock} unless defined $r;
    return ref $r eq 'ARRAY' ? $r->[0] : -1;
}

# Where the duplicates come from: an event the edge stored twice (a
# transaction resent after a lost connection) or one ebd delivered again
# (an XACK lost with the old primary).
sub dup_origin {
    my ($d, $ids) = @_;
    my $p = $s->primary;
    my %stored = map {
        %{ EBTest::event_ids($p ? eval { $p->xrange("eb:{$_}:events") } : []) }
    } @bus;
    my @dup = grep { ($d->{$_} // 0) > 1 } @$ids;
    my $twice = grep { ($stored{$_} // 0) > 1 } @dup;
    return sprintf 'duplicates: %d stored twice by the edge, %d delivered '
        . 'again by ebd', $twice, @dup - $twice;
}


# --- 0. one event per bus, through to the target -----------------------------

my $first_primary = $s->primary_addr;
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
       "and acknowledged on the primary ($first_primary)");
}

# --- 1. kill -9 the primary under load ------------------------------------------

{
    my $before = delivered();
    my %load = map {
        my $b = $_;
        ($b => EBTest::Load->start(
            url => 'http://127.0.0.1:' . $ngx->port . "/$b",
            rate => 80, seconds => 15, concurrency => 100,
            timeout => $TIMEOUT + 5, body => sub { qq({"bus":"$b","i":$_[0]}) }))
    } @bus;
    sleep 3;
    my $old = $s->node_by_addr($first_primary);
    $old->kill9;
    my $tk = $load{ $bus[0] }->elapsed;     # the primary is gone (waitpid)
    my $new = $s->wait_failover($first_primary, 30);
    my $tf = $load{ $bus[0] }->elapsed;  # the sentinels named a new primary
    ok($new, sprintf 'failover: the sentinels promoted %s after %.1f s',
       $new // '-', $load{ $bus[0] }->elapsed - $tk);
    my %res = map { $_ => $load{$_}->wait } @bus;

    for my $b (@bus) {
        my $first = EBTest::Load->first_ok_after($res{$b}, $tk + 0.5);
        ok(defined $first, "failover: bus $b answers 2xx again without a reload");
        diag(sprintf 'failover: bus %s: first 2xx answer %.2f s after the '
             . 'kill', $b, (EBTest::Load->first_answer_after($res{$b}, $tk) // 99) - $tk);
    }
    is(scalar(grep { $res{$_}{errors} + $res{$_}{other} } @bus), 0,
       'failover: every request answered, 2xx or 503');
    my $max = 0;
    for (@bus) { $max = $res{$_}{max} if $res{$_}{max} > $max }
    cmp_ok($max, '<', 1000 * ($TIMEOUT + 1),
           'failover: every answer within eventbridge_redis_timeout (+1 s)');
    like($ngx->error_log, qr/sentinel: primary of mymaster is now \Q$new\E/,
         'the edge logged the new primary') if $new;

    # every acknowledged id delivered, and nothing pending any more (a
    # redelivery after --claim-idle comes before that)
    my @ids = map { @{ $res{$_}{ids} } } @bus;
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
    $s503 += $res{$_}{s503} for @bus;
    diag("failover, bus $_: " . EBTest::Load->summary($res{$_})) for @bus;
    diag(sprintf 'failover: acknowledged %d, delivered %d (all %.1f s after '
         . 'the load), lost %d (%.3f %%), duplicates %d (%.3f %%), 503s %d, '
         . 'not acknowledged but delivered %d', scalar @ids,
         scalar(grep { $d->{$_} } @ids), $t_all, $lost,
         @ids ? 100 * $lost / @ids : 0, $dups, @ids ? 100 * $dups / @ids : 0,
         $s503, $extra);
    diag('failover: ' . dup_origin($d, \@ids)) if $dups;
    # substance: events acknowledged by the old primary just before the
    # kill and by the new one after the failover, whatever it took (a
    # split sentinel vote retries after 2 x failover-timeout)
    for my $b (@bus) {
        cmp_ok(EBTest::Load->oks_between($res{$b}, 0, $tk), '>=', 100,
               "failover: bus $b: >= 100 events acknowledged before the kill");
        cmp_ok(EBTest::Load->oks_between($res{$b}, $tf), '>=', 100,
               "failover: bus $b: >= 100 events acknowledged after the failover");
    }
    is($lost, 0, 'failover: every acknowledged event delivered');
    cmp_ok($dups, '<=', 0.001 * @ids, 'failover: duplicates <= 0.1 %');
    is($ebd->pid, $ebd_pid, 'failover: the same ebd process');
    ok($ebd->alive, 'failover: ebd alive');
    like($ebd->log, qr/the primary of "mymaster" is \Q$new\E/,
         'ebd followed the new primary') if $new;
}

diag(sprintf '%.1f s in all', time - $T0);
$ebd->finish;
$ngx->finish;

done_testing;
