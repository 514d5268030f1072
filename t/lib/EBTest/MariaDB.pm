package EBTest::MariaDB;

# A real, private MariaDB server for a test: mariadb-install-db into a
# temporary directory, then mariadbd --no-defaults on a free loopback port
# (127.0.0.1 only) and a socket in that directory. The test's target
# authenticates over TCP as a user with a password, as in production; the
# harness itself administers through the socket as root (unix_socket
# authentication). The server is stopped by EBTest's cleanup (END, SIGINT,
# SIGTERM) and, should the test process die without cleaning up, killed
# by the kernel (setpriv --pdeathsig).
#
#   my $db = EBTest::MariaDB->start(database => 'hr');
#   $db->sql('CREATE TABLE t (a varchar(10))');
#   my $rows = $db->sql('SELECT a FROM t');   # [ [ 'x' ], [ undef ] ]
#   $db->stop; $db->start_again; $db->restart;
#   $db->port, $db->user, $db->password, $db->database
#   $db->create_user_info;                   # the seed's hr.user_info

use strict;
use warnings;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

use EBTest;

sub available {
    # root's unix_socket login (MariaDB), setpriv to postgres (PostgreSQL)
    return 0 unless $> == 0;
    for my $b (qw(mariadb-install-db mariadbd mariadb)) {
        return 0 unless grep { -x "$_/$b" } split(/:/, $ENV{PATH}), '/usr/sbin';
    }
    return 1;
}

sub _bin {
    my ($b) = @_;
    for my $d (split(/:/, $ENV{PATH}), '/usr/sbin', '/usr/bin') {
        return "$d/$b" if -x "$d/$b";
    }
    die "$b not found";
}

# start(database => NAME, user => U, password => P)
sub start {
    my ($class, %o) = @_;
    my $self = bless {
        database => 'hr', user => 'eb', password => 'eb-Pa55w0rd',
        %o,
    }, $class;
    $self->{dir} = tempdir('eb-mariadb-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $self->{port} //= EBTest::free_port();
    $self->{sock} = "$self->{dir}/mysqld.sock";

    my $out = `'${\ _bin('mariadb-install-db')}' --no-defaults --datadir='$self->{dir}/data' --user=root --auth-root-authentication-method=socket --skip-test-db 2>&1`;
    die "mariadb-install-db failed: $out" if $?;

    $self->_spawn;
    EBTest::register($self);

    my ($db, $u, $p) = map { _q($self->{$_}) } qw(database user password);
    $self->sql("CREATE DATABASE `$self->{database}` CHARACTER SET utf8mb4",
               "CREATE USER $u\@'127.0.0.1' IDENTIFIED BY $p",
               "CREATE USER $u\@'localhost' IDENTIFIED BY $p",
               "GRANT ALL ON `$self->{database}`.* TO $u\@'127.0.0.1'",
               "GRANT ALL ON `$self->{database}`.* TO $u\@'localhost'");
    # tls => EBTest::TLS->make(...): the server speaks TLS too, and two
    # more users (same password) may only connect over it: ebtls
    # (REQUIRE SSL) and ebx509 (REQUIRE X509: a client certificate the
    # CA signed)
    if ($self->{tls}) {
        for my $t ([ ebtls => 'SSL' ], [ ebx509 => 'X509' ]) {
            $self->sql("CREATE USER '$t->[0]'\@'127.0.0.1' IDENTIFIED BY $p REQUIRE $t->[1]",
                       "GRANT ALL ON `$self->{database}`.* TO '$t->[0]'\@'127.0.0.1'");
        }
    }
    $self->{db_arg} = "--database=" . _shq($self->{database});
    return $self;
}

sub _q {
    my ($s) = @_;
    $s =~ s/\\/\\\\/g;
    $s =~ s/'/''/g;
    return "'$s'";
}

sub _shq {
    my ($s) = @_;
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub _spawn {
    my ($self) = @_;
    my $dir = $self->{dir};
    my @args = (_bin('setpriv'), '--pdeathsig', 'KILL', '--',
                _bin('mariadbd'), '--no-defaults', "--datadir=$dir/data",
                "--socket=$self->{sock}", "--port=$self->{port}",
                '--bind-address=127.0.0.1', '--user=root',
                "--pid-file=$dir/mysqld.pid", "--log-error=$dir/error.log",
                '--skip-log-bin', '--skip-name-resolve',
                '--character-set-server=utf8mb4',
                '--innodb-buffer-pool-size=64M',
                '--innodb-log-file-size=48M',
                # a commit is in the OS's cache when acknowledged: survives
                # the server's death (SIGKILL included), not the machine's
                '--innodb-flush-log-at-trx-commit=2',
                '--max-connections=300',
                ($self->{tls} ? ("--ssl-ca=$self->{tls}{ca}",
                                 "--ssl-cert=$self->{tls}{server_cert}",
                                 "--ssl-key=$self->{tls}{server_key}") : ()));
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/stdout.log";
        open STDERR, '>>', "$dir/stdout.log";
        exec @args or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    my $up = EBTest::wait_for(sub {
        return 0 unless $self->_alive;
        return $self->_ping;
    }, 60);
    die "mariadbd did not start on port $self->{port}:\n" . $self->log_tail
        unless $up;
}

sub _alive {
    my ($self) = @_;
    return 0 unless $self->{pid};
    return waitpid($self->{pid}, WNOHANG) == 0;
}

sub _ping {
    my ($self) = @_;
    my $out = `'${\ _bin('mariadb')}' --no-defaults -S '$self->{sock}' -u root -N -B -e 'SELECT 1' 2>/dev/null`;
    return $? == 0 && $out =~ /^1$/m;
}

sub log_tail {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/error.log" or return '';
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

# The seed's table, as the walkthrough (conf/demo) creates it.
sub create_user_info {
    my ($self) = @_;
    return $self->sql('CREATE TABLE `user_info` (
  `dingId` varchar(256) NULL,
  `active` varchar(256) NULL,
  `isAdmin` varchar(256) NULL,
  `userId` varchar(256) NULL,
  `name` varchar(256) NULL
) ENGINE=InnoDB DEFAULT CHARACTER SET=utf8');
}

# The target's keys for the bus configuration file.
sub target {
    my ($self, %o) = @_;
    return { type => 'mysql', host => '127.0.0.1', port => 0 + $self->{port},
             user => $self->{user}, password => $self->{password},
             database => $self->{database}, %o };
}

# Stops the server (SIGTERM: a clean shutdown; SIGKILL after 60 s).
sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    my $end = time + 60;
    while (time < $end) {
        my $r = waitpid $pid, WNOHANG;
        return if $r == $pid || $r < 0;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

# SIGKILL, no shutdown at all.
sub kill9 {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'KILL', $pid;
    waitpid $pid, 0;
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

# sql(QUERY, ...): runs the statements as root in the test's database;
# returns the rows of the last one that has any, as [ [ v, ... ], ... ]
# with undef for NULL, values as bytes. Dies on an error.
sub sql {
    my ($self, @q) = @_;
    my $file = "$self->{dir}/query.sql";
    open my $fh, '>:raw', $file or die "$file: $!";
    for my $q (@q) {
        my $b = $q;
        utf8::encode($b) if utf8::is_utf8($b);
        print {$fh} "$b;\n";
    }
    close $fh;
    my $out = `'${\ _bin('mariadb')}' --no-defaults -S '$self->{sock}' -u root --default-character-set=utf8mb4 --xml ${\ ($self->{db_arg} // '')} < '$file' 2>&1`;
    die "mariadb: @q: $out" if $?;
    my @rows;
    my @sets = split m{<resultset }, $out;
    for my $set (reverse @sets) {
        next unless $set =~ m{<row>};
        while ($set =~ m{<row>(.*?)</row>}gs) {
            my $r = $1;
            my @v;
            while ($r =~ m{<field name="[^"]*"(?:( xsi:nil="true" />)|>(.*?)</field>)}gs) {
                push @v, defined $1 ? undef : _unxml($2);
            }
            push @rows, \@v;
        }
        last;
    }
    return \@rows;
}

sub _unxml {
    my ($s) = @_;
    $s =~ s/&(lt|gt|amp|quot|apos|#(\d+)|#x([0-9a-fA-F]+));/
        defined $2 ? chr($2) : defined $3 ? chr(hex $3)
        : { lt => '<', gt => '>', amp => '&', quot => '"', apos => "'" }->{$1}/ge;
    return $s;
}

1;
