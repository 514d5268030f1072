#!/usr/bin/perl
# make test-deb: the Debian packages of build-deb/ (make deb) installed on
# this machine with apt-get, used, and purged. Runs only with
# TEST_EB_PACKAGED=1 and as root: it changes the machine.
#
# Installed: the files are where Debian puts them; the module is enabled
# through modules-enabled and depends on the nginx ABI the stock nginx
# provides; ebd has its system user, its unit enabled but not started, its
# configuration root:ebd 0640; ebd(8) renders; versions agree.
# Used: the seed's walkthrough (the DingTalk "new employee" webhook becomes
# a user_info row in MariaDB and a call of the onboarding API) through the
# stock /usr/sbin/nginx loading the packaged module by the packaged
# modules-enabled link (private prefix, 127.0.0.1, a free port) and the
# packaged /usr/sbin/ebd, started as ebd.service would start it: its
# ExecStart, as its User, with its EnvironmentFile.
# Purged: nothing of theirs is left but the system user ebd, which Debian
# packages keep (its uid stays reserved); a reinstall reuses it.
#
# Services of the machine are left alone: a policy-rc.d (made for the
# install if there is none) denies invoke-rc.d, so nginx's reload trigger
# starts nothing; no new listener may appear outside loopback.
use strict;
use warnings;
use utf8;
use Test::More;
use File::Spec;
use JSON::PP;
use EBTest qw(wait_for slurp json_decode);
use EBTest::MariaDB;
use EBTest::Peer;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

plan skip_all => 'installs and purges packages on this machine: '
    . 'TEST_EB_PACKAGED=1 (make test-deb)' unless $ENV{TEST_EB_PACKAGED};
BAIL_OUT('make test-deb must run as root (apt-get)') unless $> == 0;
BAIL_OUT('no MariaDB server for the walkthrough (make deps)')
    unless EBTest::MariaDB::available();

my @PKGS = qw(libnginx-mod-http-eventbridge eventbridge-ebd);
my %DEB;
for my $p (@PKGS) {
    my @f = glob("build-deb/${p}_*.deb");
    BAIL_OUT("no build-deb/${p}_*.deb: run make deb") unless @f == 1;
    $DEB{$p} = File::Spec->rel2abs($f[0]);
}

# the stock nginx, the packaged module only (not build/'s)
$ENV{TEST_NGINX_BINARY} = '/usr/sbin/nginx';
$ENV{TEST_EB_MODULE} = '';
delete $ENV{TEST_EB_SAN};

my $CONF = '/etc/eventbridge/eventbridge.json';
my $DEFAULT = '/etc/default/ebd';
my $UNIT = '/lib/systemd/system/ebd.service';
my $ENABLED = '/etc/nginx/modules-enabled';
my $WANTS = '/etc/systemd/system/multi-user.target.wants/ebd.service';
my $APT = 'DEBIAN_FRONTEND=noninteractive apt-get -y -q '
        . '-o DPkg::Lock::Timeout=300';

sub shq { my $s = shift; $s =~ s/'/'\\''/g; return "'$s'" }

# (exit code, stdout + stderr) of a command
sub run {
    my $cmd = join ' ', map { shq($_) } @_;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

sub status {
    my ($p) = @_;
    my (undef, $s) = run('dpkg-query', '-W', '-f=${db:Status-Status}', $p);
    return $s =~ /^(\S+)$/ ? $1 : 'not-installed';
}

sub field {
    my ($p, $f) = @_;
    my (undef, $v) = run('dpkg-query', '-W', "-f=\${$f}", $p);
    return $v;
}

# TCP listeners outside loopback: what installing must not add
sub listeners {
    my %l;
    for (`ss -ltnH`) {
        my $local = (split ' ')[3] // next;
        $l{$local} = 1 unless $local =~ /^(127\.|\[::1\]|\[::ffff:127\.)/;
    }
    return \%l;
}

sub new_listeners {
    my ($before) = @_;
    return grep { !$before->{$_} } sort keys %{ listeners() };
}

sub ebd_processes { my @p = `pgrep -u ebd`; chomp @p; return @p }

# The unit's keys (the last of each), as systemd reads them.
sub unit_keys {
    my %k;
    for (split /\n/, slurp($UNIT)) {
        $k{$1} = $2 if /^\s*([A-Za-z]+)=(.*?)\s*$/;
    }
    return \%k;
}

# An EnvironmentFile: NAME=VALUE lines, quotes removed.
sub env_file {
    my ($path) = @_;
    my %e;
    for (split /\n/, -r $path ? slurp($path) : '') {
        next unless /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*?)\s*$/;
        my ($k, $v) = ($1, $2);
        $v =~ s/^"(.*)"$/$1/ or $v =~ s/^'(.*)'$/$1/;
        $e{$k} = $v;
    }
    return \%e;
}

# ExecStart's words: $NAME splits its value at white space, ${NAME} is one
# word, as systemd expands them.
sub exec_argv {
    my ($line, $env) = @_;
    my @argv;
    for my $w (split ' ', $line) {
        if ($w =~ /^\$([A-Za-z_]\w*)$/) {
            push @argv, split ' ', $env->{$1} // '';
        } elsif ($w =~ /^\$\{([A-Za-z_]\w*)\}$/) {
            push @argv, $env->{$1} // '';
        } else {
            push @argv, $w;
        }
    }
    return @argv;
}

# Rewrites a file in place: its owner and mode stay (a conffile with a
# statoverride).
sub overwrite {
    my ($path, $text) = @_;
    open my $fh, '>:raw', $path or die "$path: $!";
    print {$fh} $text;
    close $fh or die "$path: $!";
}

my $listening = listeners();
my $uid_before = getpwnam('ebd');    # an earlier run's user, if any

for my $p (@PKGS) {
    BAIL_OUT("$p is on this machine already (" . status($p) . "); the "
             . 'test would purge it: remove it first')
        if status($p) ne 'not-installed';
}

# invoke-rc.d starts, stops, reloads nothing while we install and purge
my $policy = '/usr/sbin/policy-rc.d';
my $own_policy = !-e $policy;
if ($own_policy) {
    overwrite($policy, "#!/bin/sh\nexit 101\n");
    chmod 0755, $policy;
}

my $installed;
sub purge {
    my ($rc, $out) = run('sh', '-c', "$APT purge @PKGS");
    $installed = 0 if $rc == 0;
    return ($rc, $out);
}
END {
    my $rc = $?;
    EBTest::cleanup_all();    # ebd and nginx stop before their files go
    purge() if $installed;
    unlink $policy if $own_policy;
    $? = $rc;
}

# --- install -----------------------------------------------------------------

my ($rc, $out) = run('sh', '-c', "$APT install --no-install-recommends "
                                 . join(' ', map { shq($DEB{$_}) } @PKGS));
$installed = 1;
is($rc, 0, 'apt-get install ./the .debs') or diag $out;
is(status($_), 'installed', "$_ installed") for @PKGS;
my %files = map { $_ => [ split /\n/, (run('dpkg', '-L', $_))[1] ] } @PKGS;

my $version = field('eventbridge-ebd', 'Version');
is(field('libnginx-mod-http-eventbridge', 'Version'), $version,
   "both packages are version $version");
(my $upstream = $version) =~ s/-[^-]+$//;
is((run('/usr/sbin/ebd', '--version'))[1], "ebd $upstream\n",
   'ebd --version says the package version');

# the module: Debian's layout, its ABI
my $so = '/usr/lib/nginx/modules/ngx_http_eventbridge_module.so';
my $avail = '/usr/share/nginx/modules-available/mod-http-eventbridge.conf';
ok(-f $so, $so);
is(-f $avail ? slurp($avail) : '',
   "load_module modules/ngx_http_eventbridge_module.so;\n",
   "$avail loads it");
my @links = glob("$ENABLED/*-mod-http-eventbridge.conf");
is(scalar(@links), 1, 'enabled in modules-enabled');
my $link = $links[0] // "$ENABLED/50-mod-http-eventbridge.conf";
is(readlink($link) // '', $avail, "$link links to modules-available");
my ($abi) = field('libnginx-mod-http-eventbridge', 'Depends')
    =~ /(nginx-abi-[^\s,]+)/;
ok($abi, 'the module depends on an nginx ABI: ' . ($abi // 'none'));
ok((grep { $_ eq ($abi // '') } split /,\s*/, field('nginx', 'Provides')),
   'the stock nginx provides it');
my ($ngx_version) = (run('/usr/sbin/nginx', '-V'))[1]
    =~ m{nginx version: nginx/(\S+)};
$ngx_version //= 'none';
like($abi // '', qr/^nginx-abi-\Q$ngx_version\E-/,
     "nginx -V is the version of that ABI: $ngx_version");

# ebd: its user, its files, its unit
my @pw = getpwnam('ebd');
ok(@pw && $pw[2] < 1000, 'system user ebd') or BAIL_OUT('no user ebd');
my ($ebd_uid, $ebd_gid) = @pw[2, 3];
is($ebd_uid, $uid_before, 'a reinstall keeps its uid') if defined $uid_before;
like($pw[8], qr{/(nologin|false)$}, 'ebd has no login shell');
is(getgrgid($ebd_gid) // '', 'ebd', 'its group is ebd');

my @st = stat $CONF;
is(sprintf('%04o %d:%s', $st[2] & 07777, $st[4], scalar getgrgid($st[5])),
   '0640 0:ebd', "$CONF: root:ebd 0640");
is((run('setpriv', '--reuid=ebd', '--regid=ebd', '--init-groups',
        'cat', $CONF))[0], 0, 'user ebd reads it');
isnt((run('setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups',
          'cat', $CONF))[0], 0, 'user nobody does not');
@st = stat $DEFAULT;
is(sprintf('%04o %d', $st[2] & 07777, $st[4]), '0600 0', "$DEFAULT: root 0600");
is(slurp($CONF), slurp('conf/buses.json'),
   'the example configuration is the demo\'s');

my $unit = unit_keys();
is($unit->{User}, 'ebd', 'ebd.service runs as ebd');
is((split ' ', $unit->{ExecStart} // '')[0], '/usr/sbin/ebd',
   'ebd.service runs /usr/sbin/ebd');
SKIP: {
    skip 'no systemd-analyze', 1 unless -x '/usr/bin/systemd-analyze';
    ($rc, $out) = run('systemd-analyze', 'verify', $UNIT);
    is($rc, 0, 'systemd-analyze verify ebd.service') or diag $out;
}
is(readlink($WANTS) // '', $UNIT, 'ebd.service enabled');
is(join(',', ebd_processes()), '', 'ebd not started');

my $man = '/usr/share/man/man8/ebd.8.gz';
is((run('man', '-w', '8', 'ebd'))[1], "$man\n", 'man 8 ebd finds ebd(8)');
local $ENV{MANWIDTH} = 80;
($rc, $out) = run('man', '--warnings', '-E', 'UTF-8', '-l', $man);
is($rc, 0, 'ebd(8) renders');
like($out, qr/^NAME\n\s+ebd\s+-\s+delivers/m, 'ebd(8) NAME');
unlike($out, qr/warning/i, 'ebd(8) renders without groff warnings')
    or diag $out;

is(join(' ', new_listeners($listening)), '',
   'nothing listens outside loopback');

# --- the seed's walkthrough through the packages ------------------------------

# nginx: the stock binary, the module loaded by the packaged modules-enabled
# link, whose relative load_module path needs Debian's prefix layout
sub packaged_nginx {
    my (%o) = @_;
    my $ng = EBTest::Nginx->new(main => "include $link;", %o);
    symlink '/usr/share/nginx/modules', $ng->dir . '/modules' or die $!;
    return $ng;
}

# the shipped configuration passes nginx's check (same parser as ebd)
my $check = packaged_nginx(http => <<"HTTP");
    eventbridge_redis 127.0.0.1:1;
    eventbridge_config $CONF;
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /w { eventbridge_source my.dingtalk bus=demo; }
    }
HTTP
($rc, $out) = $check->test_conf;
is($rc, 0, 'nginx -t: the module loads, the shipped configuration passes')
    or diag $out;

my $redis = EBTest::Redis->start;
my $db = EBTest::MariaDB->start(database => 'hr');
# the seed's table, as conf/demo creates it
$db->create_user_info;

# conf/nginx.conf's walkthrough locations, on one server
my $ng = packaged_nginx(redis => $redis, http => <<"HTTP");
    eventbridge_redis %%REDIS%%;
    eventbridge_config $CONF;
    client_max_body_size 1m;
    client_body_buffer_size 1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /webhook/putEvents {
            eventbridge_source my.dingtalk bus=demo;
            eventbridge_allow_methods POST;
            eventbridge_token demo-token;
        }
        location = /onboarding {
            eventbridge_source onboarding.api bus=onboarding;
            eventbridge_allow_methods POST;
        }
        location /console/ {
            eventbridge_console;
            allow 127.0.0.1;
            deny all;
        }
    }
HTTP

# conf/buses.json (the demo's rule and targets) pointed at these servers,
# in the packaged configuration file; ebd's options in /etc/default/ebd
my $buses = JSON::PP->new->utf8->decode(slurp('conf/buses.json'));
my $t = $buses->{targets};
@{ $t->{'user-info-mysql'} }{qw(host port user password)}
    = ('127.0.0.1', 0 + $db->port, $db->user, $db->password);
$t->{'onboarding-api'}{url} = 'http://127.0.0.1:' . $ng->port . '/onboarding';
# the DingTalk robot: a local one that checks the signature as DingTalk
my $robot = EBTest::Peer->start(control => { dingtalk => {
    access_token => 'demo-robot-token',
    secret => $t->{'hr-robot'}{secret} } });
$t->{'hr-robot'}{url} = $robot->url('/robot/send?access_token=demo-robot-token');
overwrite($CONF, JSON::PP->new->utf8->canonical->pretty->encode($buses));
overwrite($DEFAULT, 'EBD_OPTS="-r ' . $redis->addr . " -n deb-test\"\n");
@st = stat $CONF;
is(sprintf('%04o %s', $st[2] & 07777, scalar getgrgid($st[5])), '0640 ebd',
   'the configuration keeps root:ebd 0640');

$ng->start;

# the console's pages from the package's default root, Chart.js through
# its link to libjs-chart.js
for my $c ([ '/console/', qr/<title>eventbridge console</ ],
           [ '/console/app.js', qr/import/ ],
           [ '/console/vendor/chart.js/chart.min.js', qr/Chart\.js v3/ ]) {
    my $r = $ng->request(method => 'GET', path => $c->[0]);
    ok($r->{status} == 200 && $r->{body} =~ $c->[1], "packaged console: $c->[0]");
}

my $env = env_file($unit->{EnvironmentFile} =~ s/^-//r);
my @argv = exec_argv($unit->{ExecStart}, $env);
my $ebd = EBTest::Ebd->start(
    command => ['setpriv', "--reuid=$unit->{User}",
                '--regid=' . ($unit->{Group} // $unit->{User}),
                '--init-groups', '--', @argv],
    env => $env);
ok($ebd->alive && $ebd->log =~ /ebd: ready/,
   "ebd started as the unit does: @argv")
    or diag $ebd->log;
is((stat "/proc/" . $ebd->pid)[4], $ebd_uid, 'ebd runs as user ebd');

my $body = slurp('t/data/dingtalk_user_add_org.json');
my $r = $ng->request(path => '/webhook/putEvents?token=demo-token',
                     headers => ['Content-Type' => 'application/json'],
                     body => $body);
is($r->{status}, 200, 'the DingTalk webhook is accepted') or diag $r->{raw};
my $id = $r->{json}{eventId} // 'none';

my $emp = json_decode($body);
my $row = [ $emp->{dingId}, 'true', 'false', $emp->{userId}, $emp->{name} ];
utf8::encode($_) for @$row;
my $rows = [];
wait_for(sub {
    $rows = $db->sql('SELECT `dingId`, `active`, `isAdmin`, `userId`, `name`'
                     . ' FROM user_info');
    @$rows > 0 }, 30);
is_deeply($rows, [ $row ], 'hr.user_info has the new employee\'s row');

my $api;
wait_for(sub { ($api) = @{ $redis->xrange('eb:{onboarding}:events') }; $api },
         30);
my $call = json_decode($api ? $api->[1]{event} : '') // {};
is_deeply($call->{data}{body},
          { welcome => $emp->{name}, id => $emp->{userId} },
          'the onboarding API got the templated welcome');

my $trace = '';
wait_for(sub {
    $trace = (run('/usr/sbin/ebd', '-r', $redis->addr, 'trace', '--bus', 'demo',
                  '--event', $id))[1];
    $trace =~ /onboarding-api/ && $trace =~ /user-info-mysql/
        && $trace =~ /hr-robot/ }, 20);
like($trace, qr/accepted\s+source my\.dingtalk .*rules new-employee/,
     'trace: accepted');
like($trace, qr/delivered\s+target user-info-mysql\s+attempt 1 .*event \Q$id\E/,
     'trace: the row');
like($trace,
     qr/delivered\s+target onboarding-api\s+attempt 1\s+status 200 .*event \Q$id\E/,
     'trace: the API call');
like($trace,
     qr/delivered\s+target hr-robot\s+attempt 1\s+status 200 .*event \Q$id\E/,
     'trace: the DingTalk robot');
my ($msg) = @{ $robot->requests(path => '/robot/send') };
ok($msg && $msg->{sign_ok}, 'the robot got a signed message');
is((json_decode($msg ? $msg->{body} : '') // {})->{markdown}{title},
   "New employee $emp->{name}", 'the robot\'s markdown message');

$ebd->finish;
$ng->finish;
is(join(',', ebd_processes()), '', 'no process of user ebd left');

# --- purge --------------------------------------------------------------------

($rc, $out) = purge();
is($rc, 0, 'apt-get purge') or diag $out;
is(status($_), 'not-installed', "$_ purged") for @PKGS;

# what dpkg -L listed is gone, but directories (/lib: a link to one) that
# hold other files or that other packages own
sub empty_dir {
    opendir my $d, $_[0] or return 0;
    return !grep { !/^\.\.?$/ } readdir $d;
}
my @left;
for my $f (map { @$_ } values %files) {
    next unless -e $f || -l $f;
    next if -d $f && (!empty_dir($f) || (run('dpkg-query', '-S', $f))[0] == 0);
    push @left, $f;
}
is(join(' ', @left), '', 'every file of the packages is gone');
ok(!-e $_ && !-l $_, "$_ gone")
    for ($link, "$link.removed", '/etc/eventbridge', $DEFAULT, $WANTS,
         '/var/lib/systemd/deb-systemd-helper-enabled/ebd.service.dsh-also');
unlike((run('dpkg-statoverride', '--list'))[1], qr/eventbridge/,
       'no statoverride left');

@pw = getpwnam('ebd');
is($pw[2] // -1, $ebd_uid, 'the system user ebd stays, its uid reserved');
my $owned = `find /etc /usr /var /srv /opt -xdev -user ebd 2>/dev/null`;
is($owned, '', 'no file belongs to ebd');
is(join(' ', new_listeners($listening)), '',
   'still nothing listens outside loopback');

done_testing;
