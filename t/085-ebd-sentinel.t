#!/usr/bin/perl
# ebd behind Redis Sentinel (1 primary, 2 replicas, 3 sentinels): events
# are delivered to an HTTP peer; kill -9 of the primary while events keep
# coming (written with WAIT 1, so they survive) -> the sentinels promote
# a replica, ebd follows the new primary without a reload or restart, and
# every written event is delivered (at least once); the trace subcommand
# finds the primary through the sentinels too. Redis and the sentinels
# have passwords of their own. A sentinel that names a replica is not
# believed: ROLE must say master.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use IO::Socket::IP;
use IO::Select;
use POSIX ();
use EBTest qw(wait_for write_file);
use EBTest::Peer;
use EBTest::Sentinel;

my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;
plan skip_all => 'redis-sentinel not installed'
    unless `redis-sentinel --version 2>/dev/null` =~ /v=(\d+)/ && $1 >= 7;

my $JSON = JSON::PP->new->utf8->canonical;
my $t0 = time;
my @fakes;
END { my $rc = $?; kill 'KILL', $_ for @fakes; waitpid $_, 0 for @fakes; $? = $rc; }

my ($PW, $SPW) = ('redis-pw-5e2', 'sentinel-pw-9a7');
my $s = EBTest::Sentinel->start(replicas => 2, sentinels => 3,
                                master => 'ebmaster', down_after_ms => 1000,
                                failover_timeout_ms => 5000, password => $PW,
                                sentinel_password => $SPW);
my $peer = EBTest::Peer->start(control => { default => 200 });
my $cfg = {
    targets => {
        hook => { type => 'http', url => $peer->url('/hook'),
                  retry => { strategy => 'backoff', attempts => 1000,
                             interval => '50ms', max_interval => '200ms' } },
    },
    buses => { map { $_ => { rules => {
        all => { pattern => { source => [{ prefix => '' }] },
                 targets => [ { target => 'hook' } ] } } } } qw(s1 s2) },
};
my $dir = $s->dir;
write_file("$dir/buses.json", $JSON->encode($cfg));

my $sentinels = join ',', $s->sentinel_addrs;
my $ebd = EBTest::Ebd->start(config => "$dir/buses.json",
                             redis_addr => $sentinels, name => 's',
                             args => [ '--sentinel', $s->master_name,
                                       '-a', $PW, '--sentinel-password', $SPW,
                                       '--claim-idle', '3s', '--block', '500ms',
                                       '--redis-timeout', '3s' ]);
ok($ebd->alive && $ebd->log =~ /ebd: ready: consumer "s", 2 route/,
   'ebd ready behind the sentinels')
    or BAIL_OUT("ebd did not start:\n" . $ebd->log);
my $pid = $ebd->pid;
my $first = $s->primary_addr;
like($ebd->log, qr/the primary of "ebmaster" is \Q$first\E/,
     "ebd asked the sentinels: $first");

my (%written, $n);

sub write_event {
    my ($bus, $wait) = @_;
    my $id = "$bus-" . ++$n;
    my $p = $s->primary or return 0;
    my $r = eval {
        $p->pipeline([ 'XADD', "eb:{$bus}:target:hook", '*', 'rule', 'all',
                       'event', qq({"id":"$id","source":"t085","type":"t.e"}) ],
                     [ 'WAIT', 1, 1000 ]);
    };
    unless ($r) {
        delete $p->{sock};
        return 0;
    }
    return 0 if ref $r->[0] || ($wait && (ref $r->[1] || $r->[1] < 1));
    $written{$id} = 1;
    return 1;
}

sub delivered { $peer->delivered_ids(path => '/hook') }

sub all_delivered {
    my $d = delivered();
    return !grep { !$d->{$_} } keys %written;
}

sub figures {
    my ($what) = @_;
    my $d = delivered();
    my $lost = grep { !$d->{$_} } keys %written;
    my $dups = 0;
    $dups += $d->{$_} - 1 for grep { $d->{$_} } keys %written;
    diag sprintf "%s: written %d, delivered %d, lost %d, duplicates %d",
        $what, scalar keys %written,
        scalar(grep { $d->{$_} } keys %written), $lost, $dups;
    return $lost;
}

# A stand-in sentinel on a free port, in a child: AUTH is OK, SENTINEL
# get-master-addr-by-name answers what the file $answer says (HOST:PORT).
sub fake_sentinel {
    my ($answer) = @_;
    my $ls = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                 Listen => 16, ReuseAddr => 1)
        or die "listen: $@";
    my $port = $ls->sockport;
    my $parent = $$;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{ALRM} = sub { POSIX::_exit(0) };
        alarm 120;
        my $sel = IO::Select->new($ls);
        my %buf;
        while (kill 0, $parent) {
            for my $fh ($sel->can_read(0.2)) {
                if ($fh == $ls) {
                    $sel->add($ls->accept);
                    next;
                }
                my $n = sysread $fh, my $chunk, 4096;
                unless ($n) {
                    $sel->remove($fh);
                    delete $buf{$fh};
                    close $fh;
                    next;
                }
                $buf{$fh} .= $chunk;
                while ($buf{$fh} =~ s/^\*(\d+)\r\n((?:\$\d+\r\n[^\r]*\r\n)*)//) {
                    my @w = $2 =~ /\$\d+\r\n([^\r]*)\r\n/g;
                    my $out;
                    if (uc $w[0] eq 'AUTH') {
                        $out = "+OK\r\n";
                    } elsif (uc $w[0] eq 'SENTINEL') {
                        my ($h, $p) = EBTest::slurp($answer) =~ /^(.*):(\d+)/;
                        $out = sprintf "*2\r\n\$%d\r\n%s\r\n\$%d\r\n%s\r\n",
                            length $h, $h, length $p, $p;
                    } else {
                        $out = "-ERR unknown\r\n";
                    }
                    syswrite $fh, $out;
                }
            }
        }
        POSIX::_exit(0);
    }
    close $ls;
    push @fakes, $pid;
    return $port;
}

# --- deliveries --------------------------------------------------------------

for (1 .. 20) {
    write_event($_, 1) for qw(s1 s2);
}
ok(wait_for(\&all_delivered, 15), 'all 40 events delivered');
is(figures('steady'), 0, 'none lost');

# --- kill -9 of the primary ----------------------------------------------------

my $old = $s->primary;
$old->kill9;
my $killed = time;
my $new;
while (time - $killed < 30) {
    write_event($_, 1) for qw(s1 s2);
    $new = $s->wait_failover($first, 0.3) and last;
}
ok($new, sprintf 'failover: %s is the primary %.1f s after the kill',
   $new // '-', time - $killed);
for (1 .. 20) {
    write_event($_, 1) for qw(s1 s2);
}
my $t = time;
ok(wait_for(\&all_delivered, 30), sprintf 'failover: all written events '
   . 'delivered (%.1f s after the new primary)', time - $t);
is(figures('failover'), 0, 'failover: none lost');
is($ebd->pid, $pid, 'failover: the same ebd process, no reload');
like($ebd->log, qr/the primary of "ebmaster" is \Q$new\E/,
     'failover: ebd names the new primary');
ok(wait_for(sub {
    my $p = $s->primary or return 0;
    my $r = $p->cmd('XPENDING', 'eb:{s1}:target:hook', 'ebd');
    ref $r eq 'ARRAY' && $r->[0] == 0;
}, 15), 'failover: acknowledged on the new primary');

# --- a switch-over: the old primary stays up, as a replica ------------------
# (its connections are not lost: ebd learns from -READONLY or from its
# blocked read being ended, and from ROLE, that it must ask again)

{
    my $before = $s->primary_addr;
    my $t = time;
    # refused (NOGOODSLAVE) until the other replica follows the new primary
    my $r;
    while (time - $t < 20) {
        $r = eval { $s->failover };
        last if defined $r && !ref $r;
        write_event($_, 1) for qw(s1 s2);
        sleep 0.3;
    }
    ok(defined $r && !ref $r, sprintf 'switch-over: SENTINEL FAILOVER '
       . 'accepted after %.1f s', time - $t) or diag explain $r;
    $t = time;
    my ($next, $asked) = (undef, time);
    while (time - $t < 40) {
        write_event($_, 1) for qw(s1 s2);
        $next = $s->wait_failover($before, 0.3) and last;
        if (time - $asked > 12) {
            # a switch-over that timed out (a replica still syncing)
            eval { $s->failover };
            $asked = time;
        }
    }
    ok($next, sprintf 'switch-over: %s is the primary after %.1f s',
       $next // '-', time - $t);
    for (1 .. 10) {
        write_event($_, 1) for qw(s1 s2);
    }
    ok(wait_for(\&all_delivered, 30), 'switch-over: all written events '
       . 'delivered');
    is(figures('switch-over'), 0, 'switch-over: none lost');
    is($ebd->pid, $pid, 'switch-over: the same ebd process');
}

# --- trace through the sentinels ---------------------------------------------

{
    my ($eid) = sort grep { /^s2-/ } keys %written;
    my $cmd = join ' ', map { "'$_'" } $EBD, '-c', "$dir/buses.json",
        '-r', $sentinels, '--sentinel', $s->master_name, '-a', $PW,
        '--sentinel-password', $SPW, 'trace',
        '--bus', 's2', '--since', '-5m', '--target', 'hook';
    my $out = `$cmd 2>&1`;
    is($? >> 8, 0, 'trace --sentinel: exit 0') or diag $out;
    like($out, qr/delivered/, 'trace --sentinel: deliveries listed');
}

# --- a sentinel naming a replica: ROLE says no, ebd asks again -------------
# (a stand-in sentinel whose answer the test chooses)

{
    my ($replica) = $s->replicas;
    my $answer = "$dir/fake-answer";
    write_file($answer, $replica->addr);
    my $fake = fake_sentinel($answer);
    my $e2 = EBTest::Ebd->start(config => "$dir/buses.json",
                                redis_addr => "127.0.0.1:$fake", name => 's-2',
                                ready_mark => 'ebd: starting',
                                args => [ '--sentinel', $s->master_name,
                                          '-a', $PW, '--redis-timeout', '3s' ]);
    ok(wait_for(sub { $e2->log =~ /\Q${\ $replica->addr }\E is not the primary; asking the sentinels again/ }, 10),
       'ROLE: a replica named by a sentinel is not used');
    unlike($e2->log, qr/ebd: ready/, 'ROLE: not ready on a replica');
    write_file($answer, $s->primary_addr);
    ok(wait_for(sub { $e2->log =~ /ebd: ready/ }, 15),
       'ROLE: ready once the sentinel names the primary');
    # the dispatcher's connections (the replay runner's own says it
    # once more per bus)
    my @said = grep { !/replay runner/ } $e2->log =~ /^.*is not the primary.*$/mg;
    cmp_ok(scalar @said, '<=', 4, 'ROLE: said once per connection ('
           . scalar(@said) . ')');
    $e2->finish;
}

unlike($ebd->log, qr/\Q$PW\E|\Q$SPW\E/, 'no password is ever logged');
diag sprintf 'ebd log: %d lines; %.1f s in all',
    scalar(() = $ebd->log =~ /\n/g), time - $t0;
note $ebd->log;
$ebd->finish;

done_testing;
