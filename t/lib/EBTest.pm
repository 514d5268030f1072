package EBTest;

# A small harness in the manner of nginx-tests: every test writes its own
# nginx.conf, starts a real nginx (with the built module) and a real
# redis-server on free loopback ports, talks HTTP and RESP to them, and at
# the end fails if the error log holds an [alert], [crit], [emerg] or a
# sanitizer report.

use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use JSON::PP;
use IPC::Open2 ();
use Test::More;

our @EXPORT_OK = qw(free_port http json_decode wait_for write_file slurp
                    event_ids);

my @started;    # objects to stop at exit

sub json_decode {
    my ($text) = @_;
    my $v = eval { JSON::PP->new->utf8->allow_nonref->decode($text) };
    return $v;
}

# The CloudEvent ids in stream entries ([id, { event => JSON }], as
# xrange returns them), counted: { id => how many entries carry it }.
sub event_ids {
    my ($entries) = @_;
    my %ids;
    for my $e (@{ $entries // [] }) {
        next unless ref $e eq 'ARRAY' && ref $e->[1] eq 'HASH';
        my $ev = json_decode($e->[1]{event} // '') // {};
        $ids{ $ev->{id} }++ if ref $ev eq 'HASH' && defined $ev->{id};
    }
    return \%ids;
}

# A Prometheus text page read by Prometheus's own parser (t/bin/prom-parse,
# python3-prometheus-client): { 'name' or 'name{k="v",...}' => value },
# labels sorted by name. Dies when the page does not parse: what a real
# scraper refuses is a failure. In list context also the families
# ([ { name, type, help, samples => [ { name, labels, value } ] } ]).
my $PROM_PARSE = File::Spec->rel2abs(__FILE__) =~ s{lib/EBTest\.pm$}{bin/prom-parse}r;

sub prometheus {
    my ($text) = @_;
    my $pid = IPC::Open2::open2(my $out, my $in, $PROM_PARSE) or die "prom-parse: $!";
    binmode $in; binmode $out;
    print {$in} $text;
    close $in;
    my $json = do { local $/; <$out> };
    waitpid $pid, 0;
    die "prom-parse refused the page (exit " . ($? >> 8) . ")\n" if $?;
    my $doc = json_decode($json) // die "prom-parse: no JSON\n";
    my %m;
    for my $f (@{ $doc->{families} }) {
        for my $s (@{ $f->{samples} }) {
            my $l = $s->{labels};
            my $k = %$l ? $s->{name} . '{' . join(',', map { qq($_="$l->{$_}") }
                                                  sort keys %$l) . '}'
                        : $s->{name};
            $m{$k} = $s->{value};
        }
    }
    return wantarray ? (\%m, $doc->{families}) : \%m;
}

# Writes a file whole, by rename: a reader never sees half of it.
sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>:raw', "$path.tmp" or die "$path.tmp: $!";
    print {$fh} $text;
    close $fh or die "$path.tmp: $!";
    rename "$path.tmp", $path or die "rename $path: $!";
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "$path: $!";
    local $/;
    return <$fh>;
}

sub free_port {
    my (%o) = @_;
    my $host = $o{host} // '127.0.0.1';
    my $s = IO::Socket::IP->new(LocalHost => $host, LocalPort => 0,
                                Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "no free port on $host: $@";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub wait_for {
    my ($cond, $timeout) = @_;
    my $end = time + ($timeout // 10);
    while (time < $end) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return 0;
}

# stream_settled($redis, STREAM, TIMEOUT): within TIMEOUT s (10), every
# entry of STREAM read by its (first) consumer group and acknowledged:
# the group's last-delivered id is the stream's last, nothing pending
sub stream_settled {
    my ($redis, $stream, $timeout) = @_;
    return wait_for(sub {
        my $len = $redis->xlen($stream);
        my $info = $redis->cmd('XINFO', 'GROUPS', $stream);
        return 0 unless ref $info eq 'ARRAY' && @$info;
        my %g = @{ $info->[0] };
        return !ref $len && $len > 0 && $g{pending} == 0
            && ($g{'last-delivered-id'} // '') eq
               ($redis->cmd('XREVRANGE', $stream, '+', '-', 'COUNT', 1)->[0][0]
                // '');
    }, $timeout // 10);
}

# http(port => P, method => M, path => P, headers => [k, v, ...], body => B,
#      host => H, timeout => T, raw => TEXT)
# returns { status, reason, headers => { lc name => value }, body, json }
sub http {
    my (%o) = @_;
    my $host = $o{host} // '127.0.0.1';
    my $sock = IO::Socket::IP->new(PeerHost => $host, PeerPort => $o{port},
                                   Proto => 'tcp',
                                   $o{local} ? (LocalHost => $o{local}) : (),
                                   Timeout => 5)
        or return { status => 0, error => "connect: $@" };

    my $req;
    if (defined $o{raw}) {
        $req = $o{raw};
    } else {
        my $method = $o{method} // 'POST';
        my $path = $o{path} // '/';
        my $body = $o{body};
        my @h = @{ $o{headers} // [] };
        $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
        while (my ($k, $v) = splice @h, 0, 2) {
            $req .= "$k: $v\r\n";
        }
        if (defined $body) {
            $body = Encode::encode_utf8($body) if utf8::is_utf8($body);
            $req .= "Content-Length: " . length($body) . "\r\n"
                unless grep { lc $_ eq 'transfer-encoding' } @{ $o{headers} // [] };
        }
        $req .= "\r\n";
        $req .= $body if defined $body;
    }

    local $SIG{PIPE} = 'IGNORE';
    print {$sock} $req;

    my $resp = '';
    my $deadline = time + ($o{timeout} // 15);
    $sock->blocking(0);
    while (time < $deadline) {
        my $buf;
        my $n = sysread($sock, $buf, 65536);
        if (defined $n) {
            last if $n == 0;
            $resp .= $buf;
            next;
        }
        sleep 0.005;
    }
    close $sock;

    my ($head, $rbody) = split /\r\n\r\n/, $resp, 2;
    return { status => 0, error => 'no response', raw => $resp }
        unless defined $head && $head =~ m{^HTTP/1\.[01] (\d+) ?(.*)};
    my %r = (status => $1, reason => $2, raw => $resp);
    my %hdr;
    for my $line (split /\r\n/, $head) {
        next unless $line =~ /^([^:]+):\s*(.*)$/;
        $hdr{lc $1} = $2;
    }
    $r{headers} = \%hdr;
    $rbody //= '';
    if (($hdr{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($rbody =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $out .= substr($rbody, 0, $len, '');
            $rbody =~ s/^\r\n//;
        }
        $rbody = $out;
    }
    $r{body} = $rbody;
    $r{json} = json_decode($rbody) if ($hdr{'content-type'} // '') =~ /json/;
    return \%r;
}

require Encode;

# Other harness objects (database servers, ...) with a stop method: stopped
# with the rest at exit.
sub register { push @started, $_[0]; return $_[0] }

# What the sanitizers wrote into DIR/asan.* and DIR/ubsan.* (san_env's
# log_path), one problem per file.
sub san_reports {
    my ($dir) = @_;
    my @bad;
    for my $f (glob("$dir/asan.*"), glob("$dir/ubsan.*")) {
        open my $fh, '<', $f or next;
        local $/;
        push @bad, "$f: " . <$fh>;
    }
    return @bad;
}

sub cleanup_all {
    for my $o (reverse @started) {
        $o->stop if $o && $o->{pid};
    }
    @started = ();
}

# waitpid in cleanup must not clobber the test's exit status
END { my $rc = $?; cleanup_all(); $? = $rc; }

$SIG{INT} = $SIG{TERM} = $SIG{PIPE} = sub { cleanup_all(); exit 1 };


package EBTest::Redis;

use strict;
use warnings;
use IO::Socket::IP;
use Time::HiRes qw(sleep time);
use File::Temp qw(tempdir);

# EBTest::Redis->start(%opts): opts appendonly => 'yes', password => P,
# port => N, args => [more redis-server arguments]
sub start {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    $self->{dir} //= tempdir('eb-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $self->{port} //= EBTest::free_port();
    $self->_spawn;
    push @started, $self;
    return $self;
}

sub _spawn {
    my ($self) = @_;
    my @args = ('redis-server', '--port', $self->{port}, '--bind', '127.0.0.1',
                '--dir', $self->{dir}, '--save', '',
                '--appendonly', $self->{appendonly} // 'no',
                '--logfile', "$self->{dir}/redis.log",
                '--daemonize', 'no');
    push @args, '--requirepass', $self->{password} if $self->{password};
    push @args, @{ $self->{args} } if $self->{args};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec @args or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    EBTest::wait_for(sub { $self->ping }, 10)
        or die "redis-server did not start on port $self->{port}";
}

sub port { $_[0]{port} }
sub addr { "127.0.0.1:$_[0]{port}" }
sub pid { $_[0]{pid} }

sub ping {
    my ($self) = @_;
    my $r = eval { $self->cmd('PING') };
    return defined $r && !ref $r && $r eq 'PONG';
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
    delete $self->{sock};
}

sub restart {
    my ($self) = @_;
    $self->stop;
    $self->_spawn;
}

# A crash: no shutdown, no final write of the append-only file.
sub kill9 {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
    delete $self->{sock};
}

# Runs many commands in one write; returns the replies.
sub pipeline {
    my ($self, @cmds) = @_;
    my $s = $self->_sock;
    my $req = '';
    for my $c (@cmds) {
        $req .= '*' . scalar(@$c) . "\r\n";
        for my $a (@$c) {
            my $b = $a;
            utf8::encode($b) if utf8::is_utf8($b);
            $req .= '$' . length($b) . "\r\n$b\r\n";
        }
    }
    local $SIG{PIPE} = 'IGNORE';
    print {$s} $req or die "redis write failed";
    return [ map { _read_reply($s) } @cmds ];
}

sub _sock {
    my ($self) = @_;
    return $self->{sock} if $self->{sock};
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                PeerPort => $self->{port}, Proto => 'tcp',
                                Timeout => 5)
        or die "connect redis: $@";
    $self->{sock} = $s;
    if ($self->{password}) {
        $self->cmd('AUTH', $self->{password});
    }
    return $s;
}

# cmd(@args): a reply; errors come back as { error => TEXT }
sub cmd {
    my ($self, @args) = @_;
    my $s = $self->_sock;
    my $req = '*' . scalar(@args) . "\r\n";
    for my $a (@args) {
        my $b = $a;
        utf8::encode($b) if utf8::is_utf8($b);
        $req .= '$' . length($b) . "\r\n$b\r\n";
    }
    local $SIG{PIPE} = 'IGNORE';
    unless (print {$s} $req) {
        delete $self->{sock};
        die "redis write failed";
    }
    my $r = _read_reply($s);
    return $r;
}

sub _readline {
    my ($s) = @_;
    my $line = <$s>;
    die "redis connection closed" unless defined $line;
    $line =~ s/\r\n$//;
    return $line;
}

sub _read_reply {
    my ($s) = @_;
    my $line = _readline($s);
    my $t = substr($line, 0, 1, '');
    if ($t eq '+') { return $line }
    if ($t eq '-') { return { error => $line } }
    if ($t eq ':') { return 0 + $line }
    if ($t eq '$') {
        return undef if $line < 0;
        my $buf = '';
        while (length($buf) < $line + 2) {
            my $n = read($s, $buf, $line + 2 - length($buf), length($buf));
            die "redis read failed" unless $n;
        }
        return substr($buf, 0, $line);
    }
    if ($t eq '*') {
        return undef if $line < 0;
        return [ map { _read_reply($s) } 1 .. $line ];
    }
    die "bad redis reply type '$t'";
}

# Entries of a stream: [ [id, { field => value }], ... ]
sub xrange {
    my ($self, $key) = @_;
    my $r = $self->cmd('XRANGE', $key, '-', '+');
    return [] unless ref $r eq 'ARRAY';
    return [ map { [ $_->[0], { @{ $_->[1] } } ] } @$r ];
}

sub xlen {
    my ($self, $key) = @_;
    return $self->cmd('XLEN', $key);
}


package EBTest::Nginx;

use strict;
use warnings;
use File::Spec;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Test::More;

sub binary { $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx' }
sub module {
    return $ENV{TEST_EB_MODULE} if defined $ENV{TEST_EB_MODULE};
    my $so = 'build/nginx/objs/ngx_http_eventbridge_module.so';
    return -f $so ? File::Spec->rel2abs($so) : '';
}

# The environment nginx runs in: under the sanitizer build the ASan
# runtime must be preloaded into the (uninstrumented) stock binary.
sub san_env {
    my ($dir) = @_;
    return () unless $ENV{TEST_EB_SAN};
    my $asan = `cc -print-file-name=libasan.so`;
    chomp $asan;
    return (
        LD_PRELOAD => $asan,
        ASAN_OPTIONS => "detect_leaks=0:abort_on_error=0:log_path=$dir/asan",
        UBSAN_OPTIONS => "print_stacktrace=1:log_path=$dir/ubsan",
    );
}

# EBTest::Nginx->new(http => TEXT, [main => TEXT], [workers => N])
# TEXT may use %%PORT%%, %%PORT6%%, %%REDIS%%, %%DIR%%.
sub new {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    $self->{dir} = tempdir('eb-nginx-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $self->{port} //= EBTest::free_port();
    mkdir "$self->{dir}/logs";
    $self->write_conf($o{http});
    return $self;
}

sub port { $_[0]{port} }
sub dir { $_[0]{dir} }

sub write_conf {
    my ($self, $http) = @_;
    $self->{http} = $http;
    my $dir = $self->{dir};
    my $module = module();
    my $workers = $self->{workers} // 1;
    my $main = $self->{main} // '';
    my $user = $> == 0 ? "user root;\n" : '';
    my $conf = ($module ? "load_module $module;\n" : '') . <<"CONF";
${user}worker_processes $workers;
daemon on;
master_process on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log info;
$main
events { worker_connections 1024; }
http {
    access_log $dir/logs/access.log;
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
$http
}
CONF
    $conf = $self->subst($conf);
    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!";
    print {$fh} $conf;
    close $fh;
}

sub subst {
    my ($self, $text) = @_;
    $text =~ s/%%PORT%%/$self->{port}/g;
    if ($text =~ /%%PORT6%%/) {
        $self->{port6} //= EBTest::free_port(host => '::1');
        $text =~ s/%%PORT6%%/$self->{port6}/g;
    }
    $text =~ s/%%REDIS%%/$self->{redis} ? $self->{redis}->addr : '127.0.0.1:1'/ge;
    $text =~ s/%%DIR%%/$self->{dir}/g;
    return $text;
}

sub _run {
    my ($self, @args) = @_;
    my $dir = $self->{dir};
    my %env = san_env($dir);
    local @ENV{keys %env} = values %env;
    my $cmd = join ' ', map { "'$_'" } binary(), '-p', "$dir/", '-c',
        "$dir/nginx.conf", '-e', "$dir/logs/error.log", @args;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

# nginx -t: (exit code, output)
sub test_conf {
    my ($self) = @_;
    return $self->_run('-t');
}

sub start {
    my ($self) = @_;
    my ($rc, $out) = $self->_run();
    die "nginx failed to start: $out" if $rc != 0;
    EBTest::wait_for(sub { -s "$self->{dir}/nginx.pid" }, 10)
        or die "nginx did not write its pid";
    $self->{pid} = $self->master_pid;
    push @started, $self;
    # the workers connect to redis right after start
    EBTest::wait_for(sub {
        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                    PeerPort => $self->{port}, Timeout => 1);
        $s ? (close($s), 1) : 0 }, 10);
    sleep 0.2;
    return $self;
}

sub master_pid {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/nginx.pid" or return;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid;
}

sub worker_pids {
    my ($self) = @_;
    my $master = $self->{pid} or return ();
    my @pids = `pgrep -P $master`;
    chomp @pids;
    return @pids;
}

sub reload {
    my ($self) = @_;
    kill 'HUP', $self->{pid};
}

sub stop {
    my ($self) = @_;
    my $pid = $self->{pid} or return;
    kill 'QUIT', $pid;
    EBTest::wait_for(sub { !kill(0, $pid) }, 20) or kill 'KILL', $pid;
    delete $self->{pid};
}

sub request {
    my ($self, %o) = @_;
    return EBTest::http(port => $self->{port}, %o);
}

# The samples of an eventbridge_status location: { 'name{labels}' => N }
sub metrics {
    my ($self, $path) = @_;
    my $r = $self->request(method => 'GET', path => $path // '/status');
    return {} unless $r->{status} == 200;
    return EBTest::prometheus($r->{body} // '');
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/logs/error.log" or return '';
    local $/;
    return <$fh>;
}

# Problems that must never appear: alerts, crits, emergencies, and any
# sanitizer report (in the error log, where nginx sends stderr, or in
# the sanitizers' own log files).
sub log_problems {
    my ($self) = @_;
    my @bad = grep { /\[(alert|crit|emerg)\]|AddressSanitizer|runtime error:|LeakSanitizer/ }
        split /\n/, $self->error_log;
    return (@bad, EBTest::san_reports($self->{dir}));
}

# Stops nginx and checks the error log; counts as one test.
sub finish {
    my ($self, %o) = @_;
    $self->stop;
    my @bad = $self->log_problems;
    @bad = grep { !/$o{allow}/ } @bad if $o{allow};
    ok(!@bad, 'error log clean') or diag join "\n", @bad;
}

1;


package EBTest::Ebd;

# The dispatcher, as a child process: EBTest::Ebd->start(config => PATH,
# redis => EBTest::Redis or redis_addr => "A,B,...", [name => CONSUMER],
# [args => [...]]), or command => [ARGV] to run exactly that (t/095: the
# packaged unit's ExecStart, as its User); env => { NAME => VALUE } more
# environment.
# Its log (stderr) goes to DIR/ebd.log; sanitizer reports are problems.

use strict;
use warnings;
use File::Spec;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use Test::More;

sub binary {
    return $ENV{TEST_EB_EBD} if $ENV{TEST_EB_EBD};
    my $b = 'build/ebd';
    return File::Spec->rel2abs($b);
}

sub start {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    $self->{dir} //= tempdir('eb-ebd-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $self->{name} //= 'ebd-test';
    $self->_spawn;
    push @started, $self;
    return $self;
}

sub _spawn {
    my ($self) = @_;
    # redis_addr => "A,B,...": a cluster's seeds or sentinels (with
    # --cluster / --sentinel in args) instead of redis => EBTest::Redis
    my @args = $self->{command} ? @{ $self->{command} } : (
                binary(), '-c', $self->{config},
                '-r', $self->{redis_addr} // $self->{redis}->addr,
                '-n', $self->{name}, '-l', $self->{level} // 'info',
                @{ $self->{args} // [] });
    my $pw = $self->{redis} ? $self->{redis}{password} : undef;
    push @args, '-a', $pw if $pw && !$self->{command};
    my $dir = $self->{dir};
    my %env = EBTest::Nginx::san_env($dir);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        @ENV{keys %env} = values %env;
        my $more = $self->{env} // {};
        @ENV{keys %$more} = values %$more;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/ebd.log";
        open STDERR, '>>', "$dir/ebd.log";
        exec @args or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    # ready once it says so in its log
    my $mark = $self->{ready_mark} // 'ebd: ready';
    EBTest::wait_for(sub { $self->log =~ /\Q$mark\E/ || !$self->alive }, 10);
}

sub pid { $_[0]{pid} }
sub dir { $_[0]{dir} }

sub alive {
    my ($self) = @_;
    return 0 unless $self->{pid};
    return waitpid($self->{pid}, WNOHANG) == 0;
}

sub log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/ebd.log" or return '';
    local $/;
    return <$fh>;
}

# SIGTERM and wait (up to 30 s, then SIGKILL); returns the exit status.
sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    my $end = time + 30;
    while (time < $end) {
        my $r = waitpid $pid, WNOHANG;
        return $? if $r == $pid || $r < 0;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
    return $?;
}

sub kill9 {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

sub restart {
    my ($self) = @_;
    $self->stop;
    $self->_spawn;
}

sub reload {
    my ($self) = @_;
    kill 'HUP', $self->{pid};
}

sub log_problems {
    my ($self) = @_;
    my @bad = grep { /AddressSanitizer|runtime error:|LeakSanitizer|\] error .*(assert|panic)/ }
        split /\n/, $self->log;
    return (@bad, EBTest::san_reports($self->{dir}));
}

# Stops ebd (SIGTERM) and checks it exited 0 with a clean log; one test.
sub finish {
    my ($self, %o) = @_;
    my $st = $self->stop // 0;
    my @bad = $self->log_problems;
    @bad = grep { !/$o{allow}/ } @bad if $o{allow};
    push @bad, "ebd exit status $st" if $st;
    ok(!@bad, 'ebd exited cleanly, log clean') or diag join "\n", @bad;
}

1;
