package EBTest::Sentinel;

# A real Redis Sentinel set-up on 127.0.0.1 for the tests: one primary
# (an EBTest::Redis), its replicas, and a few redis-sentinel processes
# watching it with a quorum of 2 and small timeouts, so a failover takes
# a few seconds.
#
#   my $s = EBTest::Sentinel->start(replicas => 2, sentinels => 3,
#               master => 'mymaster', down_after_ms => 1000,
#               failover_timeout_ms => 5000, password => undef,
#               sentinel_password => undef, args => [...]);
#   $s->primary / replicas / nodes     EBTest::Redis objects
#   $s->sentinels                      EBTest::Sentinel::Node objects
#                                      (port, addr, cmd, stop, kill9, restart)
#   $s->sentinel_addrs / master_name
#   $s->primary_addr                   a sentinel's answer, "127.0.0.1:PORT"
#   $s->failover                       SENTINEL FAILOVER (no agreement needed)
#   $s->wait_failover($old_addr, $timeout)  the new address or undef
#   $s->node_by_addr($addr)
#   $s->switches                       the +switch-master lines of all the
#                                      sentinels: [ time, old, new ], oldest
#                                      first, one per new primary
#   $s->stop
#
# Every process is stopped at exit with the rest of EBTest's processes.

use strict;
use warnings;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Time::Local ();

sub start {
    my ($class, %o) = @_;
    my $self = bless {
        replicas => 2, sentinels => 3, master => 'mymaster',
        down_after_ms => 1000, failover_timeout_ms => 5000, %o,
    }, $class;
    $self->{dir} //= tempdir('eb-sentinel-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $pw = $self->{password};
    my @auth = $pw ? ('--masterauth', $pw) : ();
    # replicas sync at once (Redis 7 waits 5 s for more replicas)
    my @args = ('--repl-diskless-sync-delay', '0', @{ $self->{args} // [] });

    my $primary = EBTest::Redis->start(
        appendonly => $self->{appendonly} // 'no', password => $pw,
        args => [ @auth, @args ]);
    push @{ $self->{nodes} }, $primary;
    for (1 .. $self->{replicas}) {
        push @{ $self->{nodes} }, EBTest::Redis->start(
            appendonly => $self->{appendonly} // 'no', password => $pw,
            args => [ '--replicaof', '127.0.0.1', $primary->port,
                      @auth, @args ]);
    }
    EBTest::wait_for(sub {
        for my $n (@{ $self->{nodes} }[1 .. $self->{replicas}]) {
            my $r = eval { $n->cmd('INFO', 'replication') } // '';
            return 0 if ref $r || $r !~ /^master_link_status:up/m;
        }
        return 1;
    }, 20) or die "replicas did not sync";

    for my $i (1 .. $self->{sentinels}) {
        my $dir = "$self->{dir}/s$i";
        mkdir $dir or die "$dir: $!";
        push @{ $self->{sentinel_nodes} }, EBTest::Sentinel::Node->start(
            dir => $dir, master => $self->{master},
            master_port => $primary->port, quorum => $self->{quorum} // 2,
            down_after_ms => $self->{down_after_ms},
            failover_timeout_ms => $self->{failover_timeout_ms},
            auth_pass => $pw, password => $self->{sentinel_password});
    }

    # ready when every sentinel knows the replicas and the other
    # sentinels: only then can they agree on a failover
    EBTest::wait_for(sub {
        for my $sn ($self->sentinels) {
            my $m = $self->_master_info($sn) or return 0;
            return 0 unless ($m->{'num-slaves'} // 0) >= $self->{replicas}
                && ($m->{'num-other-sentinels'} // 0)
                   >= $self->{sentinels} - 1;
        }
        return 1;
    }, 30) or die "sentinels did not discover each other";
    return $self;
}

sub nodes { @{ $_[0]{nodes} } }
sub sentinels { @{ $_[0]{sentinel_nodes} } }
sub sentinel_addrs { map { $_->addr } $_[0]->sentinels }
sub master_name { $_[0]{master} }
sub dir { $_[0]{dir} }

# Every failover the sentinels logged, as [ epoch seconds, old, new ]:
# the earliest line per (old, new). A slow machine may see two failovers
# where one was meant (an aborted one, or a second leader in a later
# epoch); a test can then measure from the last.
sub switches {
    my ($self) = @_;
    my %first;
    for my $sn ($self->sentinels) {
        for my $l (split /\n/, $sn->log) {
            next unless $l =~ /^\d+:X (\d+) (\w{3}) (\d{4}) (\d+):(\d+):(\d+(?:\.\d+)?) .*\+switch-master \S+ (\S+) (\d+) (\S+) (\d+)/;
            my %mon; @mon{qw(Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec)} = 0 .. 11;
            my $t = Time::Local::timelocal(0, $5, $4, $1, $mon{$2}, $3) + $6;
            my $k = "$7:$8 $9:$10";
            $first{$k} = [ $t, "$7:$8", "$9:$10" ]
                if !$first{$k} || $t < $first{$k}[0];
        }
    }
    return sort { $a->[0] <=> $b->[0] } values %first;
}

# Samples, every $step s until $until (epoch seconds), which server the
# sentinels name as primary and how many replicas it reports online:
# [ epoch seconds, primary address or '', online replicas ]. A primary's
# writes can be WAITed for only once a replica is online.
sub watch {
    my ($self, $until, $step) = @_;
    my @samples;
    while (Time::HiRes::time() < $until) {
        my $addr = eval { $self->primary_addr } // '';
        my $node = $addr ? $self->node_by_addr($addr) : undef;
        my $info = $node ? eval { $node->cmd('INFO', 'replication') } : undef;
        delete $node->{sock} if $node && !defined $info;
        my $online = () = ($info // '') =~ /^slave\d+:.*state=online/mg;
        push @samples, [ Time::HiRes::time(), $addr, $online ];
        Time::HiRes::sleep($step // 0.1);
    }
    return @samples;
}

sub node_by_addr {
    my ($self, $addr) = @_;
    return unless defined $addr && $addr =~ /:(\d+)$/;
    my $port = $1;
    my ($n) = grep { $_->port == $port } $self->nodes;
    return $n;
}

sub _master_info {
    my ($self, $sn) = @_;
    return unless $sn->{pid};
    my $r = eval { $sn->cmd('SENTINEL', 'MASTER', $self->{master}) };
    delete $sn->{sock} unless defined $r;
    return unless ref $r eq 'ARRAY';
    return { @$r };
}

# What one sentinel says the primary is: "127.0.0.1:PORT"
sub _ask {
    my ($self, $sn) = @_;
    return unless $sn->{pid};
    my $r = eval {
        $sn->cmd('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', $self->{master})
    };
    delete $sn->{sock} unless defined $r;
    return unless ref $r eq 'ARRAY' && @$r == 2;
    return "$r->[0]:$r->[1]";
}

sub primary_addr {
    my ($self) = @_;
    for my $sn ($self->sentinels) {
        my $a = $self->_ask($sn);
        return $a if defined $a;
    }
    return;
}

sub primary {
    my ($self) = @_;
    return $self->node_by_addr($self->primary_addr);
}

sub replicas {
    my ($self) = @_;
    my $p = $self->primary;
    return grep { $_->{pid} && (!$p || $_ != $p) } $self->nodes;
}

sub _role {
    my ($node) = @_;
    return '' unless $node && $node->{pid};
    my $r = eval { $node->cmd('ROLE') };
    delete $node->{sock} unless defined $r;
    return ref $r eq 'ARRAY' ? $r->[0] : '';
}

# A failover now, without waiting for the primary to be seen down.
sub failover {
    my ($self) = @_;
    my ($sn) = grep { $_->{pid} } $self->sentinels;
    return $sn->cmd('SENTINEL', 'FAILOVER', $self->{master});
}

# Waits until a majority of the live sentinels name the same primary,
# other than $old_addr, and that node says ROLE master.
sub wait_failover {
    my ($self, $old, $timeout) = @_;
    my $new;
    EBTest::wait_for(sub {
        my @live = grep { $_->{pid} } $self->sentinels;
        my %votes;
        $votes{$_}++ for grep { defined } map { $self->_ask($_) } @live;
        for my $a (keys %votes) {
            next if defined $old && $a eq $old;
            next unless $votes{$a} * 2 > @live;
            next unless _role($self->node_by_addr($a)) eq 'master';
            $new = $a;
            return 1;
        }
        return 0;
    }, $timeout // 30);
    return $new;
}

sub stop {
    my ($self) = @_;
    $_->stop for $self->sentinels;
    $_->stop for $self->nodes;
}


package EBTest::Sentinel::Node;

# One redis-sentinel: an EBTest::Redis (cmd, ping, stop, kill9, restart)
# started from its own config file, which sentinel rewrites as it goes.

use strict;
use warnings;
our @ISA = ('EBTest::Redis');

sub _spawn {
    my ($self) = @_;
    $self->{port} //= EBTest::free_port();
    my $conf = "$self->{dir}/sentinel.conf";
    # a restart keeps what the sentinel learned (it rewrote the file)
    unless (-f $conf) {
        my $m = $self->{master};
        my $text = <<"CONF";
port $self->{port}
bind 127.0.0.1
daemonize no
dir $self->{dir}
logfile $self->{dir}/sentinel.log
sentinel resolve-hostnames no
sentinel announce-ip 127.0.0.1
sentinel monitor $m 127.0.0.1 $self->{master_port} $self->{quorum}
sentinel down-after-milliseconds $m $self->{down_after_ms}
sentinel failover-timeout $m $self->{failover_timeout_ms}
sentinel parallel-syncs $m 1
CONF
        $text .= "sentinel auth-pass $m $self->{auth_pass}\n"
            if $self->{auth_pass};
        $text .= "requirepass $self->{password}\n" if $self->{password};
        EBTest::write_file($conf, $text);
    }
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>>', "$self->{dir}/sentinel.err";
        exec 'redis-sentinel', $conf or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    EBTest::wait_for(sub { $self->ping }, 10)
        or die "redis-sentinel did not start on port $self->{port}";
}

sub log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/sentinel.log" or return '';
    local $/;
    return <$fh>;
}

1;
