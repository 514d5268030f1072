package EBTest::RedisCluster;

# A real Redis Cluster on 127.0.0.1 for the tests: N primaries with M
# replicas each, every node an EBTest::Redis started with
# --cluster-enabled, joined by `redis-cli --cluster create`. The helpers
# below ask the nodes themselves (CLUSTER SLOTS / NODES / KEYSLOT) rather
# than keeping their own idea of the topology, so they stay right after a
# failover or a migration.
#
#   my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 1,
#               node_timeout => 1000, appendonly => 'no',
#               password => undef, args => [...]);
#   $c->nodes / seeds / primaries / node_by_port($port)
#   $c->slot_of($key) / primary_of_slot($slot)
#   $c->cmd_key($key, @cmd)       on the owner, following MOVED and ASK
#   $c->xrange($key) / xlen($key)
#   $c->bus_names($n)             $n bus names, their slots on $n primaries
#   $c->wait_ok($timeout)
#   $c->kill9_primary_of_slot($slot)  -> the killed node
#   $c->wait_failover($slot, $old, $timeout) -> the new primary or undef
#   $c->migrate_slot($slot, $to, pause => 0.5, keys_per_step => 1)
#   $c->start_migrate($slot, $to) / step_migrate($m) / finish_migrate($m)
#   $c->stop
#
# Every node is stopped at exit with the rest of EBTest's processes.

use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::IP;
use Time::HiRes qw(sleep time);

# A port whose cluster bus port (+10000) is free as well.
sub _cluster_port {
    for (1 .. 100) {
        my $p = EBTest::free_port();
        next if $p + 10000 > 65535;
        my $s = IO::Socket::IP->new(LocalHost => '127.0.0.1',
                                    LocalPort => $p + 10000, Proto => 'tcp',
                                    Listen => 1, ReuseAddr => 1)
            or next;
        close $s;
        return $p;
    }
    die "no free port pair for a cluster node";
}

sub start {
    my ($class, %o) = @_;
    my $self = bless {
        primaries => 3, replicas => 1, node_timeout => 1000,
        appendonly => 'no', %o,
    }, $class;
    $self->{dir} //= tempdir('eb-cluster-XXXXXX', TMPDIR => 1, CLEANUP => 1);

    my $n = $self->{primaries} * (1 + $self->{replicas});
    my $pw = $self->{password};
    for my $i (0 .. $n - 1) {
        my $dir = "$self->{dir}/n$i";
        mkdir $dir or die "$dir: $!";
        my @args = ('--cluster-enabled', 'yes',
                    '--cluster-config-file', "$dir/nodes.conf",
                    '--cluster-node-timeout', $self->{node_timeout},
                    # a replica of a dead primary may always take over
                    '--cluster-replica-validity-factor', '0',
                    # replicas sync at once (Redis 7 waits 5 s for more)
                    '--repl-diskless-sync-delay', '0',
                    @{ $self->{args} // [] });
        push @args, '--masterauth', $pw if $pw;
        push @{ $self->{nodes} }, EBTest::Redis->start(
            dir => $dir, port => _cluster_port(),
            appendonly => $self->{appendonly}, password => $pw,
            args => \@args);
    }

    my @cli = ('redis-cli', '--cluster', 'create', $self->seeds,
               '--cluster-replicas', $self->{replicas}, '--cluster-yes');
    push @cli, '-a', $pw, '--no-auth-warning' if $pw;
    my $log = "$self->{dir}/create.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @cli or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    die "redis-cli --cluster create failed: " . EBTest::slurp($log) if $?;

    $self->wait_ok(30) or die "cluster did not become ok: " . $self->_state;
    $self->wait_replicas(30) or die "replicas did not sync: " . $self->_state
        if $self->{replicas};
    return $self;
}

sub nodes { @{ $_[0]{nodes} } }
sub live_nodes { grep { $_->{pid} } @{ $_[0]{nodes} } }
sub seeds { map { $_->addr } @{ $_[0]{nodes} } }
sub dir { $_[0]{dir} }
sub password { $_[0]{password} }

sub node_by_port {
    my ($self, $port) = @_;
    my ($n) = grep { $_->port == $port } @{ $self->{nodes} };
    return $n;
}

sub node_by_addr {
    my ($self, $addr) = @_;
    return unless defined $addr && $addr =~ /:(\d+)$/;
    return $self->node_by_port($1);
}

# A command to a node that may be gone: undef instead of dying.
sub _try {
    my ($node, @cmd) = @_;
    return unless $node->{pid};
    my $r = eval { $node->cmd(@cmd) };
    delete $node->{sock} unless defined $r;
    return $r;
}

sub _any {
    my ($self, @cmd) = @_;
    for my $n ($self->live_nodes) {
        my $r = _try($n, @cmd);
        return $r if defined $r && !(ref $r eq 'HASH');
    }
    return;
}

sub node_id {
    my ($self, $node) = @_;
    return $node->{cluster_id} //= _try($node, 'CLUSTER', 'MYID');
}

sub _info {
    my ($node) = @_;
    my $r = _try($node, 'CLUSTER', 'INFO');
    return {} unless defined $r && !ref $r;
    return { map { /^(\w+):(.*?)\r?$/ ? ($1, $2) : () } split /\n/, $r };
}

# [ [from, to, master port, replica ports...], ... ] as NODE sees it
sub _slots {
    my ($node) = @_;
    my $r = _try($node, 'CLUSTER', 'SLOTS');
    return unless ref $r eq 'ARRAY';
    return [ map {
        my ($from, $to, @who) = @$_;
        [ $from, $to, map { $_->[1] } @who ]
    } @$r ];
}

sub _owner_port {
    my ($slots, $slot) = @_;
    for my $r (@$slots) {
        return $r->[2] if $slot >= $r->[0] && $slot <= $r->[1];
    }
    return;
}

# CLUSTER NODES as NODE sees it: [ { id, port, flags => {..}, master,
# slots => [ranges] } ]
sub _cluster_nodes {
    my ($node) = @_;
    my $r = _try($node, 'CLUSTER', 'NODES');
    return [] unless defined $r && !ref $r;
    my @out;
    for my $line (split /\n/, $r) {
        my ($id, $addr, $flags, $master, undef, undef, undef, $link, @slots)
            = split ' ', $line;
        next unless defined $link && $addr =~ /:(\d+)/;
        push @out, { id => $id, port => $1, master => $master, link => $link,
                     flags => { map { $_ => 1 } split /,/, $flags },
                     slots => [ grep { !/^\[/ } @slots ] };
    }
    return \@out;
}

sub _state {
    my ($self) = @_;
    return join '; ', map {
        my $i = _info($_);
        $_->port . ': ' . ($i->{cluster_state} // 'down') . ' '
            . ($i->{cluster_slots_ok} // '?') . ' slots ok'
    } $self->nodes;
}

# Every live node: cluster_state:ok, all 16384 slots ok, and the same
# owner for every slot range (the first live node's view).
sub wait_ok {
    my ($self, $timeout) = @_;
    return EBTest::wait_for(sub {
        my $ref;
        for my $n ($self->live_nodes) {
            my $i = _info($n);
            return 0 unless ($i->{cluster_state} // '') eq 'ok'
                && ($i->{cluster_slots_ok} // 0) == 16384;
            my $s = _slots($n) or return 0;
            my $view = join ',', map { "$_->[0]-$_->[1]:$_->[2]" }
                sort { $a->[0] <=> $b->[0] } @$s;
            $ref //= $view;
            return 0 unless $view eq $ref;
        }
        return 1;
    }, $timeout // 20);
}

# Every live replica has its link to its primary up (so it can take
# over when the primary dies), and the cluster's view (CLUSTER NODES, as
# replicas_of() reads it) lists it as its primary's replica: the link
# comes up before the gossip has spread the role.
sub wait_replicas {
    my ($self, $timeout) = @_;
    return EBTest::wait_for(sub {
        my $want = $self->{primaries} * $self->{replicas};
        my $up = 0;
        for my $n ($self->live_nodes) {
            my $r = _try($n, 'INFO', 'replication') // '';
            next if ref $r;
            $up++ if $r =~ /^role:slave/m && $r =~ /^master_link_status:up/m;
        }
        return 0 unless $up >= $want;
        for my $p ($self->primaries) {
            return 0 if $self->replicas_of($p) < $self->{replicas};
        }
        return 1;
    }, $timeout // 20);
}

# The nodes that serve slots now, in slot order.
sub primaries {
    my ($self) = @_;
    my $seen = {};
    for my $n ($self->live_nodes) {
        my $s = _slots($n) or next;
        my @p;
        for my $r (sort { $a->[0] <=> $b->[0] } @$s) {
            next if $seen->{$r->[2]}++;
            my $node = $self->node_by_port($r->[2]);
            push @p, $node if $node && $node->{pid};
        }
        return @p;
    }
    return ();
}

sub replicas_of {
    my ($self, $primary) = @_;
    my $id = $self->node_id($primary) // return ();
    for my $n ($self->live_nodes) {
        my $cn = _cluster_nodes($n);
        next unless @$cn;
        return grep { $_ && $_->{pid} }
            map { $self->node_by_port($_->{port}) }
            grep { $_->{master} eq $id && !$_->{flags}{fail} } @$cn;
    }
    return ();
}

sub slot_of {
    my ($self, $key) = @_;
    my $r = $self->_any('CLUSTER', 'KEYSLOT', $key);
    die "CLUSTER KEYSLOT failed" unless defined $r;
    return $r;
}

sub primary_of_slot {
    my ($self, $slot) = @_;
    for my $n ($self->live_nodes) {
        my $s = _slots($n) or next;
        my $port = _owner_port($s, $slot) // next;
        return $self->node_by_port($port);
    }
    return;
}

sub primary_of_key {
    my ($self, $key) = @_;
    return $self->primary_of_slot($self->slot_of($key));
}

# @cmd on the node that owns $key, following MOVED and ASK redirections.
sub cmd_key {
    my ($self, $key, @cmd) = @_;
    my $node = $self->primary_of_key($key) or die "no node serves $key";
    my $asking = 0;
    for (1 .. 10) {
        my $r;
        if ($asking) {
            $r = eval { $node->pipeline(['ASKING'], \@cmd)->[1] };
        } else {
            $r = eval { $node->cmd(@cmd) };
        }
        unless (defined $r || !$@) {
            delete $node->{sock};
            die "redis $cmd[0] on " . $node->addr . ": $@";
        }
        if (ref $r eq 'HASH' && $r->{error} =~ /^(MOVED|ASK) \d+ \S*:(\d+)/) {
            $asking = $1 eq 'ASK';
            $node = $self->node_by_port($2) or die "redirected to unknown $2";
            next;
        }
        if (ref $r eq 'HASH' && $r->{error} =~ /^(TRYAGAIN|CLUSTERDOWN)/) {
            sleep 0.1;
            $asking = 0;
            next;
        }
        return $r;
    }
    die "too many redirections for $key";
}

sub xrange {
    my ($self, $key) = @_;
    my $r = $self->cmd_key($key, 'XRANGE', $key, '-', '+');
    return [] unless ref $r eq 'ARRAY';
    return [ map { [ $_->[0], { @{ $_->[1] } } ] } @$r ];
}

sub xlen {
    my ($self, $key) = @_;
    return $self->cmd_key($key, 'XLEN', $key);
}

# $n bus names ("b0", "b1", ...) whose hash tag {NAME} lands on $n
# different primaries, one each (the module keys a bus's streams by
# eb:{BUS}:...). Dies when there are fewer primaries.
sub bus_names {
    my ($self, $n, $prefix) = @_;
    $prefix //= 'b';
    my @p = $self->primaries;
    die "only " . scalar(@p) . " primaries for $n buses" if @p < $n;
    my (%taken, @names);
    for my $i (0 .. 10000) {
        my $name = "$prefix$i";
        my $node = $self->primary_of_slot($self->slot_of("{$name}"));
        next if !$node || $taken{$node->port}++;
        push @names, $name;
        return @names if @names == $n;
    }
    die "could not spread $n bus names";
}

sub kill9_primary_of_slot {
    my ($self, $slot) = @_;
    my $node = $self->primary_of_slot($slot) or die "no primary for $slot";
    $node->kill9;
    return $node;
}

# Waits until every live node agrees that a live node other than $old
# serves $slot and the cluster is ok again; the new primary or undef.
sub wait_failover {
    my ($self, $slot, $old, $timeout) = @_;
    my $new;
    EBTest::wait_for(sub {
        my $port;
        for my $n ($self->live_nodes) {
            my $i = _info($n);
            return 0 unless ($i->{cluster_state} // '') eq 'ok';
            my $s = _slots($n) or return 0;
            my $p = _owner_port($s, $slot) // return 0;
            return 0 if $old && $p == $old->port;
            return 0 if defined $port && $p != $port;
            $port = $p;
        }
        $new = $self->node_by_port($port);
        return $new && $new->{pid};
    }, $timeout // 20) or return;
    return $new;
}

# Slot migration, the way redis-cli --cluster reshard does it.
sub start_migrate {
    my ($self, $slot, $to, %o) = @_;
    my $from = $self->primary_of_slot($slot) or die "no primary for $slot";
    my $m = { slot => $slot, from => $from, to => $to,
              keys_per_step => $o{keys_per_step} // 1, moved => 0 };
    return $m if $from == $to;
    my $fid = $self->node_id($from);
    my $tid = $self->node_id($to);
    _ok($to->cmd('CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $fid),
        'SETSLOT IMPORTING');
    _ok($from->cmd('CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $tid),
        'SETSLOT MIGRATING');
    return $m;
}

# Moves up to keys_per_step keys; how many it moved (0: none left).
sub step_migrate {
    my ($self, $m) = @_;
    return 0 if $m->{from} == $m->{to};
    my $keys = $m->{from}->cmd('CLUSTER', 'GETKEYSINSLOT', $m->{slot},
                               $m->{keys_per_step});
    die "GETKEYSINSLOT: $keys->{error}" if ref $keys eq 'HASH';
    return 0 unless @$keys;
    my @auth = $self->{password} ? ('AUTH', $self->{password}) : ();
    _ok($m->{from}->cmd('MIGRATE', '127.0.0.1', $m->{to}->port, '', 0, 5000,
                        @auth, 'KEYS', @$keys), 'MIGRATE');
    $m->{moved} += @$keys;
    return scalar @$keys;
}

sub finish_migrate {
    my ($self, $m) = @_;
    return $m->{to} if $m->{from} == $m->{to};
    my $tid = $self->node_id($m->{to});
    # the target first: from then on no node sends clients back and forth
    for my $n ($m->{to}, $m->{from},
               grep { $_ != $m->{to} && $_ != $m->{from} } $self->primaries)
    {
        _ok($n->cmd('CLUSTER', 'SETSLOT', $m->{slot}, 'NODE', $tid),
            'SETSLOT NODE');
    }
    $self->wait_ok(20) or die "cluster not ok after migrating $m->{slot}";
    return $m->{to};
}

# migrate_slot($slot, $to, pause => S, keys_per_step => N): pauses S
# seconds after each step (and once before the first) so a test can load
# through the migration; returns the number of keys moved.
sub migrate_slot {
    my ($self, $slot, $to, %o) = @_;
    my $pause = $o{pause} // 0;
    my $m = $self->start_migrate($slot, $to, %o);
    sleep $pause if $pause;
    while ($self->step_migrate($m)) {
        sleep $pause if $pause;
    }
    $self->finish_migrate($m);
    return $m->{moved};
}

sub _ok {
    my ($r, $what) = @_;
    die "$what: $r->{error}" if ref $r eq 'HASH';
    return $r;
}

sub stop {
    my ($self) = @_;
    $_->stop for $self->nodes;
}

1;
