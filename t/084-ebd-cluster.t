#!/usr/bin/perl
# ebd on a real Redis Cluster (3 primaries, 3 replicas): three buses whose
# slots live on three different primaries are delivered to an HTTP peer,
# acknowledged and traced on the node that owns each bus; kill -9 of a
# bus's primary while events keep coming (written with WAIT 1, so they
# survive the failover) -> ebd follows the new primary, nothing written is
# lost, no restart; a bus's slot migrated to another primary while events
# keep coming -> ebd follows MOVED; redrive and trace with --cluster; a
# target in order per key on two buses of two primaries, two more ebd
# sharing its partitions. The nodes have a password (AUTH default
# PASSWORD, from EBD_REDIS_PASSWORD).
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);
use EBTest::Peer;
use EBTest::RedisCluster;

my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;
plan skip_all => 'redis-server not installed'
    unless `redis-server --version 2>/dev/null` =~ /v=(\d+)/ && $1 >= 7;

my $JSON = JSON::PP->new->utf8->canonical;
my $t0 = time;

my $PW = 'cluster-pw-8c1';
my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 1,
                                    node_timeout => 1000, password => $PW);
my @bus = $c->bus_names(3);
my %slot = map { $_ => $c->slot_of("{$_}") } @bus;
my @owners = map { $c->primary_of_slot($slot{$_})->port } @bus;
is(scalar(keys %{ { map { $_ => 1 } @owners } }), 3,
   "buses @bus on three primaries (@owners)");

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
my $dir = $c->dir;
write_file("$dir/buses.json", $JSON->encode($cfg));

my $seeds = join ',', ($c->seeds)[0, 1];   # two seeds are enough
# AUTH default PASSWORD: the ACL form, with the password in the variable
$ENV{EBD_REDIS_PASSWORD} = $PW;
my @opts = ('--cluster', '--redis-user', 'default', '--claim-idle', '3s',
            '--block', '500ms', '--redis-timeout', '3s');
my $ebd = EBTest::Ebd->start(config => "$dir/buses.json", redis_addr => $seeds,
                             name => 'c1', args => [ @opts ]);
ok($ebd->alive && $ebd->log =~ /ebd: ready: consumer "c1", 3 route/,
   'ebd ready on the cluster') or BAIL_OUT("ebd did not start:\n" . $ebd->log);
my $pid = $ebd->pid;

my %written;        # event id -> bus, for what Redis acknowledged
my $n = 0;

sub stream { "eb:{$_[0]}:target:hook" }

sub event {
    my ($bus) = @_;
    my $id = "$bus-" . ++$n;
    return ($id, qq({"id":"$id","source":"t084","type":"t.e","data":{"n":$n}}));
}

# XADD on the owner; with $wait, WAIT 1 as well, and only what a replica
# has is counted as written (what the primary alone had may die with it
# when it is killed)
sub write_event {
    my ($bus, $wait) = @_;
    my ($id, $ev) = event($bus);
    my $r = eval { $c->cmd_key(stream($bus), 'XADD', stream($bus), '*',
                               'rule', 'all', 'event', $ev) };
    return 0 unless defined $r && !ref $r;
    if ($wait) {
        my $w = eval { $c->cmd_key(stream($bus), 'WAIT', 1, 500) };
        return 0 unless defined $w && !ref $w && $w >= 1;
    }
    $written{$id} = $bus;
    return 1;
}

sub delivered { $peer->delivered_ids(path => '/hook') }

sub all_delivered {
    my $d = delivered();
    return !grep { !$d->{$_} } keys %written;
}

sub figures {
    my ($what, $ids) = @_;
    my $d = delivered();
    my @ids = $ids ? @$ids : keys %written;
    my $lost = grep { !$d->{$_} } @ids;
    my $dups = 0;
    $dups += $d->{$_} - 1 for grep { $d->{$_} } @ids;
    diag sprintf "%s: written %d, delivered %d, lost %d, duplicates %d",
        $what, scalar @ids, scalar(grep { $d->{$_} } @ids), $lost, $dups;
    return ($lost, $dups);
}

sub pending {
    my ($bus) = @_;
    my $r = eval { $c->cmd_key(stream($bus), 'XPENDING', stream($bus), 'ebd') };
    return ref $r eq 'ARRAY' ? $r->[0] : -1;
}

# --- 1. three buses on three primaries ---------------------------------------

for my $i (1 .. 30) {
    write_event($_) for @bus;
}
ok(wait_for(\&all_delivered, 20), 'all 90 events delivered');
my ($lost) = figures('steady');
is($lost, 0, 'none lost');
ok(wait_for(sub { !grep { pending($_) != 0 } @bus }, 10),
   'every entry acknowledged (XPENDING 0 on each owner)');
for my $b (@bus) {
    my $owner = $c->primary_of_slot($slot{$b});
    my $len = $owner->cmd('XLEN', "eb:{$b}:trace");
    cmp_ok($len, '>=', 30, "trace of $b on its owner (port " . $owner->port
           . "): $len entries");
}

# --- 2. kill -9 of a bus's primary while events keep coming ----------------

{
    my $b = $bus[0];
    my @before = keys %written;
    my %mark = map { $_ => 1 } @before;
    write_event($b, 1) for 1 .. 20;
    my $old = $c->kill9_primary_of_slot($slot{$b});
    my $killed_at = time;
    # writing goes on: refused until a replica takes over
    my $new;
    while (time - $killed_at < 20) {
        write_event($b, 1);
        write_event($_) for @bus[1, 2];
        $new = $c->wait_failover($slot{$b}, $old, 0.2) and last;
    }
    ok($new, sprintf 'failover: %s took over %s after %.1f s',
       $new ? $new->addr : '-', $old->addr, time - $killed_at);
    # the new primary has no replica left: no WAIT, and it is not killed
    write_event($b) for 1 .. 20;
    my @ids = grep { !$mark{$_} } keys %written;
    my $t = time;
    ok(wait_for(\&all_delivered, 30),
       sprintf 'failover: every written event delivered (%.1f s after the '
       . 'new primary)', time - $t);
    my ($lost, $dups) = figures('failover', \@ids);
    is($lost, 0, 'failover: none lost');
    is($ebd->pid, $pid, 'failover: the same ebd process');
    ok($ebd->alive, 'failover: ebd alive');
    ok(wait_for(sub { pending($b) == 0 }, 15),
       'failover: acknowledged on the new primary');
}

# --- 3. a bus's slot migrates to another primary ---------------------------

{
    my $b = $bus[1];
    my $from = $c->primary_of_slot($slot{$b});
    my $to = $c->primary_of_slot($slot{ $bus[2] });
    my %mark = map { $_ => 1 } keys %written;
    write_event($b) for 1 .. 10;
    my $m = $c->start_migrate($slot{$b}, $to, keys_per_step => 1);
    write_event($b) for 1 .. 5;
    sleep 0.3;
    while ($c->step_migrate($m)) {
        write_event($b) for 1 .. 5;
        sleep 0.3;
    }
    $c->finish_migrate($m);
    write_event($b) for 1 .. 10;
    is($c->primary_of_slot($slot{$b})->port, $to->port,
       sprintf 'migration: slot %d from %d to %d (%d keys)', $slot{$b},
       $from->port, $to->port, $m->{moved});
    my @ids = grep { !$mark{$_} } keys %written;
    ok(wait_for(\&all_delivered, 30), 'migration: every event delivered');
    my ($lost) = figures('migration', \@ids);
    is($lost, 0, 'migration: none lost');
    ok(wait_for(sub { pending($b) == 0 }, 15),
       'migration: acknowledged on the new owner');
    like($ebd->log, qr/MOVED|slot \d+ moved|primary is now/,
         'migration: ebd followed the slot');
    is($ebd->pid, $pid, 'migration: the same ebd process');
}

# --- 4. SIGHUP: the seeds resolved again, the routes made again -------------

{
    my %mark = map { $_ => 1 } keys %written;
    $ebd->reload;
    ok(wait_for(sub { $ebd->log =~ /configuration reloaded/ }, 15),
       'reload: done');
    write_event($_) for (@bus) x 5;
    my @ids = grep { !$mark{$_} } keys %written;
    ok(wait_for(\&all_delivered, 15), 'reload: delivering on the cluster');
    my ($lost) = figures('reload', \@ids);
    is($lost, 0, 'reload: none lost');
}

# --- 5. redrive and trace with --cluster ------------------------------------

{
    my $b = $bus[2];
    my $id = "$b-letter";
    # a stored event that is not an object: dead-lettered at once (a
    # rule ebd does not know is retried, t/078)
    $c->cmd_key(stream($b), 'XADD', stream($b), '*', 'rule', 'all',
                'event', qq(["$id","t084"]));
    ok(wait_for(sub { ($c->xlen("eb:{$b}:dlq:hook") // 0) >= 1 }, 10),
       'a dead letter on the owner of its bus');
    my @base = ($EBD, '-c', "$dir/buses.json", '-r', join(',', $c->seeds),
                '--cluster');
    my $cmd = join ' ', map { "'$_'" } @base, 'redrive', $b, 'hook';
    my $out = `$cmd 2>&1`;
    is($? >> 8, 0, 'redrive --cluster: exit 0') or diag $out;
    like($out, qr/redriven 1 dead letter /, 'redrive --cluster: moved it');

    my ($eid) = grep { $written{$_} eq $b } sort keys %written;
    $cmd = join ' ', map { "'$_'" } @base, 'trace', '--bus', $b,
                                    '--event', $eid;
    $out = `$cmd 2>&1`;
    is($? >> 8, 0, 'trace --cluster: exit 0') or diag $out;
    like($out, qr/\Q$eid\E/, 'trace --cluster: the event\'s delivery');
    like($out, qr/delivered/, 'trace --cluster: delivered');
}

# --- 6. in order per key on the cluster ---------------------------------------
#
# Two more ebd, a target in order per key on two buses of two primaries:
# entries appended to the partitions as nginx appends them; the leases
# and the partitions' groups live on each bus's primary.

{
    sub fnv1a {
        my $h = 2166136261;
        $h = (($h ^ $_) * 16777619) % 4294967296 for unpack 'C*', $_[0];
        return $h;
    }
    my @ob = @bus[0, 1];
    my $ocfg = {
        targets => { ohook => { type => 'http', url => $peer->url('/ohook'),
                                ordering_key => '$.data.k', partitions => 4,
                                retry => { strategy => 'backoff', attempts => 1000,
                                           interval => '50ms', max_interval => '200ms' } } },
        buses => { map { $_ => { rules => {
            all => { pattern => { source => [{ prefix => '' }] },
                     targets => [ { target => 'ohook' } ] } } } } @ob },
    };
    write_file("$dir/ordered.json", $JSON->encode($ocfg));
    my @o = map { EBTest::Ebd->start(config => "$dir/ordered.json", redis_addr => $seeds,
                                     name => "o$_", args => [ @opts ]) } 1, 2;
    ok(!grep({ !$_->alive } @o), 'ordered: two ebd on the cluster');
    # the leases, read on each bus's primary: holder => partitions
    my $holders = sub {
        my %h;
        for my $b (@ob) {
            for my $p (0 .. 3) {
                my $l = "eb:{$b}:ord:ohook:p:$p";
                my $v = eval { $c->cmd_key($l, 'GET', $l) };
                $h{$v // 'none'}++;
            }
        }
        return \%h;
    };
    ok(wait_for(sub { my $h = $holders->();
                      ($h->{o1} // 0) >= 2 && ($h->{o2} // 0) >= 2
                      && $h->{o1} + $h->{o2} == 8 }, 20),
       'ordered: the two ebd share the 8 partitions of the two buses')
        or diag $JSON->encode($holders->());
    for my $s (1 .. 10) {
        for my $b (@ob) {
            for my $k (map { "k$_" } 1 .. 20) {
                my $st = "eb:{$b}:target:ohook:p:" . fnv1a($k) % 4;
                $c->cmd_key($st, 'XADD', $st, '*', 'rule', 'all', 'key', $k, 'event',
                            qq({"id":"$b-$k-$s","source":"t084","type":"t.o","data":{"k":"$k","s":$s}}));
            }
        }
    }
    ok(wait_for(sub { keys %{ $peer->delivered_ids(path => '/ohook') } >= 400 }, 30),
       'ordered: 2 buses x 20 keys x 10 events delivered');
    # per (bus, key): the 2xx deliveries in arrival order, repeats of one
    # already delivered removed (at least once), must be 1..10
    my %seq;
    for my $r (@{ $peer->requests(path => '/ohook') }) {
        next unless ($r->{status} // 0) == 200;
        my $ev = eval { $JSON->decode($r->{body}) } or next;
        my ($b) = $ev->{id} =~ /^(.*)-k\d+-\d+$/;
        my $l = $seq{"$b $ev->{data}{k}"} //= [];
        push @$l, $ev->{data}{s} unless grep { $_ == $ev->{data}{s} } @$l;
    }
    my $bad = grep { join(',', @{ $seq{$_} }) ne join(',', 1 .. 10) } keys %seq;
    is(scalar(keys %seq), 40, 'ordered: 2 buses x 20 keys');
    is($bad, 0, 'ordered: every (bus, key) got 1..10 in order');
    my $h = $holders->();
    diag 'ordered: leases ' . $JSON->encode($h);
    is(($h->{o1} // 0) + ($h->{o2} // 0), 8,
       'ordered: the 8 leases still held by the two ebd');
    $_->finish for @o;
}

unlike($ebd->log, qr/\Q$PW\E/, 'the password is never logged');
my @lines = split /\n/, $ebd->log;
diag sprintf 'ebd log: %d lines; %.1f s in all', scalar @lines, time - $t0;
note $ebd->log;
$ebd->finish;

done_testing;
