package EBTest::Postgres;

# A real, private PostgreSQL server for a test. PostgreSQL refuses to run
# as root, so initdb and postgres run as the `postgres` system user
# (setpriv) in a temporary directory it owns: listen_addresses=127.0.0.1 on
# a free port, the unix socket in that directory. TCP connections need a
# password (scram-sha-256), as in production: that is how the target
# connects; the harness administers through the socket (trust). The
# server is stopped by EBTest's cleanup (END, SIGINT, SIGTERM) and, should
# the test process die without cleaning up, killed by the kernel (setpriv
# --pdeathsig; its backends then exit on the postmaster's death).
#
#   my $pg = EBTest::Postgres->start(database => 'hr');
#   $pg->sql('CREATE TABLE t (a varchar(10))');
#   my $rows = $pg->sql('SELECT a FROM t');   # [ [ 'x' ], [ undef ] ]
#   $pg->stop; $pg->start_again; $pg->restart;
#   $pg->port, $pg->user, $pg->password, $pg->database

use strict;
use warnings;
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

use EBTest;

my $BIN;

sub bindir {
    return $BIN if $BIN;
    for my $d (reverse sort glob('/usr/lib/postgresql/*/bin')) {
        return $BIN = $d if -x "$d/postgres" && -x "$d/initdb";
    }
    return;
}

sub available {
    # root's unix_socket login (MariaDB), setpriv to postgres (PostgreSQL)
    return 0 unless $> == 0;
    return 0 unless bindir() && getpwnam('postgres');
    return -x '/usr/bin/psql' || -x bindir() . '/psql';
}

sub _psql { -x bindir() . '/psql' ? bindir() . '/psql' : '/usr/bin/psql' }

sub _shq {
    my ($s) = @_;
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub _lit {
    my ($s) = @_;
    $s =~ s/'/''/g;
    return "'$s'";
}

# start(database => NAME, user => U, password => P)
sub start {
    my ($class, %o) = @_;
    my $self = bless {
        database => 'hr', user => 'eb', password => 'eb-Pa55w0rd',
        %o,
    }, $class;
    my (undef, undef, $uid, $gid) = getpwnam('postgres')
        or die "no postgres system user";
    @$self{qw(uid gid)} = ($uid, $gid);
    $self->{dir} = tempdir('eb-pg-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chown $uid, $gid, $self->{dir} or die "chown $self->{dir}: $!";
    $self->{port} //= EBTest::free_port();

    my $out = `setpriv --reuid=postgres --regid=postgres --init-groups -- '${\ bindir()}/initdb' -D '$self->{dir}/data' -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync 2>&1`;
    die "initdb failed: $out" if $?;

    $self->_tls_setup if $self->{tls};
    $self->_spawn;
    EBTest::register($self);

    my ($db, $u) = @$self{qw(database user)};
    $self->sql({ admin => 1 },
               qq{CREATE ROLE "$u" LOGIN PASSWORD } . _lit($self->{password}),
               qq{CREATE DATABASE "$db" OWNER "$u" ENCODING 'UTF8' TEMPLATE template0});
    if ($self->{tls}) {
        $self->sql({ admin => 1 }, map {
            (qq{CREATE ROLE "$_" LOGIN PASSWORD } . _lit($self->{password}),
             qq{GRANT "$u" TO "$_"})
        } qw(ebtls ebx509));
    }
    return $self;
}

# tls => EBTest::TLS->make(...): ssl=on with the server's certificate,
# and two more roles (same password, members of the user's role) that may
# only connect over TLS: ebtls, and ebx509 with a client certificate the
# CA signed (clientcert=verify-full)
sub _tls_setup {
    my ($self) = @_;
    my $d = "$self->{dir}/data";
    for my $f ([ server_cert => 'server.crt' ], [ server_key => 'server.key' ],
               [ ca => 'root.crt' ]) {
        my $out = `cp '$self->{tls}{$f->[0]}' '$d/$f->[1]' 2>&1`;
        die "cp: $out" if $?;
        chown $self->{uid}, $self->{gid}, "$d/$f->[1]";
        chmod 0600, "$d/$f->[1]";
    }
    my $hba = "$d/pg_hba.conf";
    open my $fh, '<', $hba or die "$hba: $!";
    my $old = do { local $/; <$fh> };
    close $fh;
    open $fh, '>', $hba or die "$hba: $!";
    print {$fh} "hostnossl all ebtls,ebx509 127.0.0.1/32 reject\n",
                "hostssl all ebtls 127.0.0.1/32 scram-sha-256\n",
                "hostssl all ebx509 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n",
                $old;
    close $fh;
    $self->{tls_args} = [ '-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt',
                          '-c', 'ssl_key_file=server.key',
                          '-c', 'ssl_ca_file=root.crt' ];
}

sub _spawn {
    my ($self) = @_;
    my $dir = $self->{dir};
    my @args = ('setpriv', '--reuid=postgres', '--regid=postgres',
                '--init-groups', '--pdeathsig', 'KILL', '--',
                bindir() . '/postgres', '-D', "$dir/data",
                '-p', $self->{port},
                '-c', 'listen_addresses=127.0.0.1',
                '-c', "unix_socket_directories=$dir",
                # data in the OS's cache survives the server's death
                # (SIGKILL included), not the machine's
                '-c', 'fsync=off', '-c', 'max_connections=200',
                '-c', "logging_collector=off",
                @{ $self->{tls_args} // [] });
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        chdir $dir;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/postgres.log";
        open STDERR, '>>', "$dir/postgres.log";
        exec @args or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    my $up = EBTest::wait_for(sub {
        return 0 unless $self->_alive;
        return $self->_ping;
    }, 60);
    die "postgres did not start on port $self->{port}:\n" . $self->log_tail
        unless $up;
}

sub _alive {
    my ($self) = @_;
    return 0 unless $self->{pid};
    return waitpid($self->{pid}, WNOHANG) == 0;
}

sub _ping {
    my ($self) = @_;
    my $out = `'${\ _psql()}' -X -h '$self->{dir}' -p $self->{port} -U postgres -d postgres -A -t -c 'SELECT 1' 2>/dev/null`;
    return $? == 0 && $out =~ /^1$/m;
}

sub log_tail {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/postgres.log" or return '';
    my @l = <$fh>;
    return join '', @l[($#l > 20 ? $#l - 20 : 0) .. $#l];
}

sub port { $_[0]{port} }
sub host { '127.0.0.1' }
sub user { $_[0]{user} }
sub password { $_[0]{password} }
sub database { $_[0]{database} }
sub dir { $_[0]{dir} }
sub running { $_[0]->_alive }

# The target's keys for the bus configuration file.
sub target {
    my ($self, %o) = @_;
    return { type => 'postgresql', host => '127.0.0.1', port => 0 + $self->{port},
             user => $self->{user}, password => $self->{password},
             database => $self->{database}, %o };
}

# Stops the server (SIGINT: fast shutdown, clients disconnected; SIGKILL
# after 60 s).
sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'INT', $pid;
    my $end = time + 60;
    while (time < $end) {
        my $r = waitpid $pid, WNOHANG;
        return if $r == $pid || $r < 0;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

# SIGKILL of the postmaster and of its backends: no shutdown at all.
sub kill9 {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    my @kids = grep { /^\d+$/ } split /\s+/, `pgrep -P $pid`;
    kill 'KILL', $pid, @kids;
    waitpid $pid, 0;
    EBTest::wait_for(sub { !grep { kill 0, $_ } @kids }, 10);
}

# Starts a stopped server again on the same port and data.
sub start_again {
    my ($self) = @_;
    $self->_spawn unless $self->{pid};
    return $self;
}

sub restart {
    my ($self) = @_;
    $self->stop;
    $self->_spawn;
}

# sql([{ admin => 1 },] QUERY, ...): runs the statements, as the test's
# user in its database (or as postgres in database postgres with admin);
# when the last one is a SELECT (or WITH, VALUES), returns its rows as
# [ [ v, ... ], ... ] with undef for NULL, values as bytes (UTF-8).
# Dies on an error.
sub sql {
    my ($self, @q) = @_;
    my $o = ref $q[0] ? shift @q : {};
    my ($user, $db) = $o->{admin} ? ('postgres', 'postgres')
                                  : @$self{qw(user database)};
    my $rows = @q && $q[-1] =~ /^\s*(SELECT|WITH|VALUES|TABLE)\b/i;
    if ($rows) {
        # one JSON document: an array per row, in column order
        $q[-1] = "SELECT coalesce(json_agg((SELECT json_agg(e.value ORDER BY e.n) "
            . "FROM json_each_text(row_to_json(q)) WITH ORDINALITY AS e(key, value, n)))"
            . ", '[]') FROM ($q[-1]) AS q";
    }
    my $file = "$self->{dir}/query.sql";
    open my $fh, '>:raw', $file or die "$file: $!";
    for my $q (@q) {
        my $b = $q;
        utf8::encode($b) if utf8::is_utf8($b);
        print {$fh} "$b;\n";
    }
    close $fh;
    chmod 0644, $file;
    my $out = `'${\ _psql()}' -X -q -v ON_ERROR_STOP=1 -h '$self->{dir}' -p $self->{port} -U ${\ _shq($user)} -d ${\ _shq($db)} -A -t -f '$file' 2>&1`;
    die "psql: @q: $out" if $?;
    return [] unless $rows;
    my $v = JSON::PP->new->utf8->decode($out);
    for my $r (@$v) {
        utf8::encode($_) for grep { defined } @$r;
    }
    return $v;
}

1;
