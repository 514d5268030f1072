#!/usr/bin/perl
# Hardening of the edge: a token in a header, a query token that never
# reaches a log line, headers never copied into events, unix-socket clients
# only where "unix:" is listed, event ids from the kernel's CSPRNG (v4, or
# time-ordered v7), and bodies kept in memory instead of a temp file that
# a worker would have to read back.
use strict;
use warnings;
use Test::More;
use EBTest;
use IO::Socket::UNIX;
use Time::HiRes qw(time sleep);

my $KEY = 'eb:{hard}:events';
my $SECRET = 'Sup3rS3cretT0ken';

my $redis = EBTest::Redis->start;

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<"EOF");
    eventbridge_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        listen unix:%%DIR%%/eb.sock;

        location /tok { eventbridge_source s.tok bus=hard;
                        eventbridge_token $SECRET; }
        location /tok-h { eventbridge_source s.tokh bus=hard;
                          eventbridge_token $SECRET;
                          eventbridge_token_header X-EB-Token; }

        location /strip { eventbridge_source s.strip bus=hard; }
        location /strip-more {
            eventbridge_source s.strip bus=hard;
            eventbridge_strip_headers X-Secret-Thing x-other-secret;
        }

        location /ip-tcp { eventbridge_source s.ip bus=hard;
                           eventbridge_allow_ips 127.0.0.1; }
        location /ip-both { eventbridge_source s.ip bus=hard;
                            eventbridge_allow_ips 127.0.0.1 unix:; }
        location /ip-unix { eventbridge_source s.ip bus=hard;
                            eventbridge_allow_ips unix:; }
        location /ip-none { eventbridge_source s.ip bus=hard; }

        location /v4 { eventbridge_source s.id bus=hard; }
        location /v7 { eventbridge_source s.id bus=hard;
                       eventbridge_id_format uuid7; }

        location /big { eventbridge_source s.big bus=hard;
                        client_max_body_size 2m;
                        client_body_buffer_size 8k; }
        location /unlimited { eventbridge_source s.big bus=hard;
                              client_max_body_size 0;
                              client_body_buffer_size 8k; }
    }
EOF

my ($rc, $out) = $ngx->test_conf;
is($rc, 0, 'nginx -t passes');
like($out, qr/\[warn\].*"eventbridge_source s\.big".*client_max_body_size 0 \(no limit\): bodies over client_body_buffer_size \(8192\) are refused with 413/,
     'nginx -t warns about client_max_body_size 0');
$ngx->start;
my $port = $ngx->port;

sub post {
    my (%o) = @_;
    my @h = @{ delete $o{headers} // [] };
    return EBTest::http(port => $port, method => 'POST',
                        body => delete $o{body} // '{"x":1}',
                        headers => ['Content-Type' => 'application/json', @h],
                        %o);
}

sub event_by_id {
    my ($id) = @_;
    my $r = $redis->cmd('XRANGE', $KEY, '-', '+');
    for my $e (@{ ref $r eq 'ARRAY' ? $r : [] }) {
        my %f = @{ $e->[1] };
        my $ev = EBTest::json_decode($f{event});
        return $ev if $ev && ($ev->{id} // '') eq ($id // '');
    }
    return;
}

sub xlen { my $n = $redis->xlen($KEY); return ref $n ? 0 : $n // 0 }

# --- the token in a header ------------------------------------------------------

{
    my $r = post(path => '/tok-h', headers => ['X-EB-Token' => $SECRET]);
    is($r->{status}, 200, 'token header: right token -> 200');
    my $ev = event_by_id($r->{json}{eventId});
    ok($ev, 'token header: event stored');
    ok($ev && !exists $ev->{data}{headers}{'x-eb-token'},
       'token header: the header is not copied into the event');

    $r = post(path => '/tok-h', headers => ['X-EB-Token' => 'nope']);
    is($r->{status}, 401, 'token header: wrong token -> 401');
    is($r->{json}{errorCode}, 'InvalidToken', 'token header: InvalidToken');

    $r = post(path => "/tok-h?token=$SECRET");
    is($r->{status}, 401,
       'token header: the query argument is not accepted instead');

    $r = post(path => '/tok-h', headers => ['x-eb-TOKEN' => $SECRET]);
    is($r->{status}, 200, 'token header: the name is case-insensitive');
}

# --- the query token never reaches a log line ------------------------------------

{
    my $wrong = 'Wr0ngGuessAlmostRight';
    my $r = post(path => "/tok?a=1&token=$wrong&b=2");
    is($r->{status}, 401, 'redaction: wrong token -> 401');

    # 400 after the token was taken: the body is not JSON
    $r = post(path => "/tok?token=$SECRET&token=$SECRET", body => '{"x":');
    is($r->{status}, 400, 'redaction: right token, bad JSON -> 400');

    # 405 before the token is compared
    $r = EBTest::http(port => $port, method => 'DELETE',
                      path => "/tok?token=$SECRET");
    is($r->{status}, 405, 'redaction: wrong method -> 405');

    # 503: a second nginx whose Redis does not answer
    my $down = EBTest::Nginx->new(http => <<"EOF");
    eventbridge_redis 127.0.0.1:1;
    eventbridge_redis_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /tok { eventbridge_source s.tok bus=hard;
                        eventbridge_token $SECRET; }
    }
EOF
    $down->start;
    $r = EBTest::http(port => $down->port, method => 'POST',
                      path => "/tok?token=$SECRET", body => '{"x":1}',
                      headers => ['Content-Type' => 'application/json']);
    is($r->{status}, 503, 'redaction: Redis down -> 503');
    $down->stop;

    for my $n ([ 'the edge', $ngx ], [ 'the edge with Redis down', $down ]) {
        my ($what, $x) = @$n;
        my $log = $x->error_log;
        like($log, qr/token=\*\*\*/, "$what: the error log shows token=***");
        unlike($log, qr/\Q$SECRET\E|\Q$wrong\E/,
               "$what: no token value in the error log");
        my $access = EBTest::slurp($x->dir . '/logs/access.log') // '';
        unlike($access, qr/\Q$SECRET\E|\Q$wrong\E/,
               "$what: no token value in the access log (\$request)");
    }
    like($ngx->error_log, qr/token missing or wrong.*request: "POST \/tok\?a=1&token=\*\*\*&b=2 HTTP\/1\.1"/,
         'the refused request is logged with its other arguments');

    $r = post(path => "/tok?a=1&token=$SECRET&b=two");
    is($r->{status}, 200, 'right token among other arguments -> 200');
    my $ev = event_by_id($r->{json}{eventId});
    is_deeply($ev && $ev->{data}{queryString}, { a => '1', b => 'two' },
              'the event keeps the other arguments, not the token');
}

# --- headers never copied into events ------------------------------------------------

{
    my @h = ('Authorization' => 'Bearer abc', 'Cookie' => 'c=1',
             'Proxy-Authorization' => 'Basic eA==',
             'X-Gitlab-Token' => 'gl', 'X-Api-Key' => 'ak',
             'X-Auth-Token' => 'at', 'X-Secret-Thing' => 'st',
             'X-Other-Secret' => 'os', 'X-Kept' => 'k');
    my $r = post(path => '/strip', headers => [@h]);
    is($r->{status}, 200, 'strip: 200');
    my $hd = (event_by_id($r->{json}{eventId}) // {})->{data}{headers} // {};
    ok(!exists $hd->{$_}, "strip: default: $_ not copied")
        for qw(authorization cookie proxy-authorization x-gitlab-token
               x-api-key x-auth-token);
    is($hd->{'x-secret-thing'}, 'st', 'strip: default: others kept');
    is($hd->{'x-kept'}, 'k', 'strip: default: x-kept kept');

    $r = post(path => '/strip-more', headers => [@h]);
    $hd = (event_by_id($r->{json}{eventId}) // {})->{data}{headers} // {};
    ok(!exists $hd->{$_}, "strip: configured: $_ not copied")
        for qw(authorization x-gitlab-token x-secret-thing x-other-secret);
    is($hd->{'x-kept'}, 'k', 'strip: configured: x-kept kept');
}

# --- unix-socket clients ----------------------------------------------------------------

sub unix_post {
    my ($path) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $ngx->dir . '/eb.sock')
        or return 0;
    print {$s} "POST $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n"
        . '{"x":1}';
    local $/;
    my $resp = <$s> // '';
    return $resp =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0;
}

is(unix_post('/ip-tcp'), 403, 'unix socket: refused when "unix:" is not listed');
is(unix_post('/ip-both'), 200, 'unix socket: taken when "unix:" is listed');
is(unix_post('/ip-unix'), 200, 'unix socket: taken with "unix:" alone');
is(unix_post('/ip-none'), 200, 'unix socket: taken with no address rule');
is(post(path => '/ip-both')->{status}, 200, 'tcp: 127.0.0.1 still taken');
is(post(path => '/ip-unix')->{status}, 403,
   'tcp: refused where only "unix:" is listed');

# --- event ids --------------------------------------------------------------------------

{
    my $t0 = int(time * 1000);
    my @v7 = map { post(path => '/v7')->{json}{eventId} // '' } 1 .. 5;
    my $t1 = int(time * 1000);
    my $v4 = post(path => '/v4')->{json}{eventId} // '';
    like($v4, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
         'default ids are version 4');
    is(scalar(grep { /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/ } @v7),
       5, 'eventbridge_id_format uuid7: version 7 ids');
    my @ms = map { hex(substr($_, 0, 8)) * 65536 + hex(substr($_, 9, 4)) } @v7;
    is(scalar(grep { $_ >= $t0 - 1000 && $_ <= $t1 + 1000 } @ms), 5,
       'uuid7: the first 48 bits are the acceptance time in ms');
    ok(!grep({ $ms[$_] < $ms[$_ - 1] } 1 .. $#ms),
       'uuid7: later requests carry later (or equal) times');
}

# --- bodies stay in memory ---------------------------------------------------------------

{
    my $big = '{"k":"' . ('a' x (1024 * 1024)) . '"}';
    my $r = post(path => '/big', body => $big);
    is($r->{status}, 200, 'a 1 MB body with a 8k client_body_buffer_size -> 200');
    my $ev = event_by_id($r->{json}{eventId});
    is(length($ev ? $ev->{data}{body}{k} : ''), 1024 * 1024,
       'the whole body is in the event');
    unlike($ngx->error_log, qr/buffered to a temporary file/,
           'nginx did not spool the body to a temp file');

    my $before = xlen();
    $r = post(path => '/unlimited', body => '{"k":"' . ('b' x 20000) . '"}');
    is($r->{status}, 413, 'client_max_body_size 0: a body over the buffer -> 413');
    is($r->{json}{errorCode}, 'PayloadTooLarge', 'PayloadTooLarge');
    like($r->{json}{errorMessage} // '', qr/client_body_buffer_size \(8192 bytes\)/,
         'the message names client_body_buffer_size');
    is(xlen(), $before, 'nothing appended');

    $r = post(path => '/unlimited', body => '{"k":"small"}');
    is($r->{status}, 200, 'client_max_body_size 0: a small body -> 200');
}

# --- nginx -t ---------------------------------------------------------------------------------

for my $c ([ 'eventbridge_token_header "X Bad";',
             qr/"eventbridge_token_header" directive: invalid header name "X Bad"/ ],
           [ 'eventbridge_strip_headers X-Ok "a:b";',
             qr/"eventbridge_strip_headers" directive: invalid header name "a:b"/ ],
           [ 'eventbridge_id_format uuid5;',
             qr/"eventbridge_id_format" directive: invalid value "uuid5": uuid4 or uuid7/ ],
           [ 'eventbridge_allow_ips unix:x;',
             qr/invalid address or CIDR range "unix:x"/ ]) {
    my ($d, $re) = @$c;
    my $x = EBTest::Nginx->new(http => <<"EOF");
    eventbridge_redis 127.0.0.1:1;
    server { listen 127.0.0.1:%%PORT%%;
             location /h { eventbridge_source s.x bus=x; $d } }
EOF
    my ($rc, $out) = $x->test_conf;
    isnt($rc, 0, "nginx -t fails: $d");
    like($out, $re, "nginx -t names the problem: $d") or diag $out;
}

$ngx->finish;
done_testing;
