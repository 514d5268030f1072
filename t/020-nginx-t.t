#!/usr/bin/perl
# `nginx -t` on wrong module directives: it must fail, with a message that
# names the directive or the problem, the configuration file and the line.
# A valid configuration using every directive passes, and runs.
use strict;
use warnings;
use Test::More;
use EBTest;

my $REDIS = 'eventbridge_redis 127.0.0.1:6379;';

# a configuration with one event-source location; LOC goes into it, SRV into
# the server, HTTP into the http block (after eventbridge_redis unless
# HTTP replaces it: pass redis => '' to leave it out)
sub conf {
    my (%o) = @_;
    my $redis = exists $o{redis} ? $o{redis} : $REDIS;
    my $source = exists $o{source} ? $o{source}
                                   : 'eventbridge_source s.test bus=test;';
    my $http = $o{http} // '';
    my $srv = $o{srv} // '';
    my $loc = $o{loc} // '';
    return <<"EOF";
    $redis
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        $srv
        location /hook {
            $source
            $loc
        }
    }
EOF
}

# the line number of the last line of the written nginx.conf holding MARK
sub line_of {
    my ($ngx, $mark) = @_;
    open my $fh, '<', $ngx->dir . '/nginx.conf' or return 0;
    my ($n, $found) = (0, 0);
    while (<$fh>) {
        $n++;
        $found = $n if index($_, $mark) >= 0;
    }
    return $found;
}

# bad(NAME, RE, CONF): nginx -t fails, says RE, and points at the line
# marked "# HERE" (or, without a mark, at some line of the file)
sub bad {
    my ($name, $re, $conf) = @_;
    my $ngx = EBTest::Nginx->new(http => $conf);
    my ($rc, $out) = $ngx->test_conf;
    my $file = $ngx->dir . '/nginx.conf';
    subtest "nginx -t: $name" => sub {
        isnt($rc, 0, 'fails');
        like($out, qr/\[emerg\]/, 'an [emerg] message');
        like($out, $re, 'names the problem') or diag $out;
        my $line = line_of($ngx, '# HERE');
        if ($line) {
            like($out, qr/ in \Q$file\E:$line\b/,
                 "names the file and line $line") or diag $out;
        } else {
            like($out, qr/ in \Q$file\E:\d+\b/, 'names the file and a line')
                or diag $out;
        }
        like($out, qr/test failed/, 'reports the test failed');
    };
}

# --- eventbridge_allow_ips --------------------------------------------------------

bad('bad IPv4 address', qr/invalid address or CIDR range "10\.0\.0\.300"/,
    conf(loc => 'eventbridge_allow_ips 127.0.0.1 10.0.0.300; # HERE'));
bad('IPv4 prefix over 32', qr/invalid address or CIDR range "10\.0\.0\.0\/33"/,
    conf(loc => 'eventbridge_allow_ips 10.0.0.0/33; # HERE'));
bad('empty prefix', qr/invalid address or CIDR range "10\.0\.0\.1\/"/,
    conf(loc => 'eventbridge_allow_ips 10.0.0.1/; # HERE'));
bad('IPv6 prefix over 128', qr/invalid address or CIDR range "2001:db8::\/129"/,
    conf(loc => 'eventbridge_allow_ips ::1 2001:db8::/129; # HERE'));
bad('malformed IPv6', qr/invalid address or CIDR range "2001:db8:::1"/,
    conf(loc => 'eventbridge_allow_ips 2001:db8:::1; # HERE'));
bad('host name', qr/invalid address or CIDR range "localhost"/,
    conf(srv => 'eventbridge_allow_ips localhost; # HERE'));
bad('"all"', qr/"all" is the default/,
    conf(http => 'eventbridge_allow_ips all; # HERE'));
bad('duplicate eventbridge_allow_ips',
    qr/"eventbridge_allow_ips" directive is duplicate/,
    conf(loc => "eventbridge_allow_ips 127.0.0.1;\n"
              . "            eventbridge_allow_ips ::1; # HERE"));

# --- eventbridge_allow_methods -------------------------------------------------------

bad('unknown method', qr/unknown method "FETCH"/,
    conf(loc => 'eventbridge_allow_methods POST FETCH; # HERE'));
bad('CONNECT is not a webhook method', qr/unknown method "CONNECT"/,
    conf(srv => 'eventbridge_allow_methods CONNECT; # HERE'));
bad('method prefix', qr/unknown method "POS"/,
    conf(loc => 'eventbridge_allow_methods POS; # HERE'));
bad('duplicate eventbridge_allow_methods',
    qr/"eventbridge_allow_methods" directive is duplicate/,
    conf(loc => "eventbridge_allow_methods POST;\n"
              . "            eventbridge_allow_methods PUT; # HERE"));

# --- eventbridge_source ------------------------------------------------------------------

bad('eventbridge_source without bus=', qr/missing "bus=" in "test"/,
    conf(source => 'eventbridge_source s.test test; # HERE'));
bad('eventbridge_source with BUS= in upper case', qr/missing "bus=" in "BUS=test"/,
    conf(source => 'eventbridge_source s.test BUS=test; # HERE'));
bad('eventbridge_source with an empty bus', qr/missing "bus="|invalid bus name ""/,
    conf(source => 'eventbridge_source s.test bus=; # HERE'));
bad('eventbridge_source with one argument',
    qr/invalid number of arguments in "eventbridge_source" directive/,
    conf(source => 'eventbridge_source s.test; # HERE'));
bad('source name with "{"', qr/invalid source name "s\{x\}"/,
    conf(source => 'eventbridge_source "s{x}" bus=test; # HERE'));
bad('source name with "/"', qr/invalid source name "a\/b"/,
    conf(source => 'eventbridge_source a/b bus=test; # HERE'));
bad('source name with a space', qr/invalid source name "a b"/,
    conf(source => 'eventbridge_source "a b" bus=test; # HERE'));
bad('source name of 129 characters',
    qr/invalid source name "${\ ('s' x 129)}"/,
    conf(source => 'eventbridge_source ' . ('s' x 129) . ' bus=test; # HERE'));
bad('bus name with "{"', qr/invalid bus name "\{b\}"/,
    conf(source => 'eventbridge_source s.test "bus={b}"; # HERE'));
bad('bus name with "/"', qr/invalid bus name "x\/y"/,
    conf(source => 'eventbridge_source s.test bus=x/y; # HERE'));
bad('bus name with ":"', qr/invalid bus name "a:b"/,
    conf(source => 'eventbridge_source s.test bus=a:b; # HERE'));
bad('eventbridge_source without eventbridge_redis',
    qr/"eventbridge_source s\.test" needs "eventbridge_redis"/,
    conf(redis => ''));
bad('eventbridge_source in a server block',
    qr/"eventbridge_source" directive is not allowed here/,
    conf(srv => 'eventbridge_source s.test bus=test; # HERE'));
bad('duplicate eventbridge_source',
    qr/"eventbridge_source" directive is duplicate/,
    conf(loc => 'eventbridge_source s.other bus=test; # HERE'));

# --- eventbridge_redis ---------------------------------------------------------------------

bad('redis port out of range',
    qr/invalid redis address "127\.0\.0\.1:99999": invalid port/,
    conf(redis => 'eventbridge_redis 127.0.0.1:99999; # HERE'));
bad('redis address empty', qr/invalid redis address ""/,
    conf(redis => 'eventbridge_redis ""; # HERE'));
bad('redis IPv6 address unclosed', qr/invalid redis address "\[::1"/,
    conf(redis => 'eventbridge_redis [::1; # HERE'));
bad('redis unix socket without a path', qr/invalid redis address "unix:"/,
    conf(redis => 'eventbridge_redis unix:; # HERE'));
bad('redis db not a number', qr/invalid redis database "db=abc"/,
    conf(redis => 'eventbridge_redis 127.0.0.1:6379 db=abc; # HERE'));
bad('redis db negative', qr/invalid redis database "db=-1"/,
    conf(redis => 'eventbridge_redis 127.0.0.1:6379 db=-1; # HERE'));
bad('redis db over 65535', qr/invalid redis database "db=65536"/,
    conf(redis => 'eventbridge_redis 127.0.0.1:6379 db=65536; # HERE'));
bad('redis db empty', qr/invalid redis database "db="/,
    conf(redis => 'eventbridge_redis 127.0.0.1:6379 db=; # HERE'));
bad('redis empty password', qr/empty redis password/,
    conf(redis => 'eventbridge_redis 127.0.0.1:6379 password=; # HERE'));
bad('redis unknown parameter', qr/invalid parameter "timeout=5"/,
    conf(redis => 'eventbridge_redis 127.0.0.1:6379 timeout=5; # HERE'));
bad('redis parameter misspelt', qr/invalid parameter "passwd=x"/,
    conf(redis => 'eventbridge_redis 127.0.0.1:6379 passwd=x; # HERE'));
bad('duplicate eventbridge_redis', qr/"eventbridge_redis" directive is duplicate/,
    conf(http => 'eventbridge_redis 127.0.0.1:6380; # HERE'));
bad('eventbridge_redis in a server block',
    qr/"eventbridge_redis" directive is not allowed here/,
    conf(srv => 'eventbridge_redis 127.0.0.1:6379; # HERE'));

# --- numbers -------------------------------------------------------------------------------------

bad('eventbridge_max_json_depth 0',
    qr/value must be between 1 and 254/,
    conf(loc => 'eventbridge_max_json_depth 0; # HERE'));
bad('eventbridge_max_json_depth 255 (deeper than the rule matcher goes)',
    qr/value must be between 1 and 254/,
    conf(srv => 'eventbridge_max_json_depth 255; # HERE'));
bad('eventbridge_max_json_depth not a number',
    qr/"eventbridge_max_json_depth" directive invalid number/,
    conf(http => 'eventbridge_max_json_depth deep; # HERE'));
bad('duplicate eventbridge_max_json_depth',
    qr/"eventbridge_max_json_depth" directive is duplicate/,
    conf(loc => "eventbridge_max_json_depth 8;\n"
              . "            eventbridge_max_json_depth 9; # HERE"));
bad('eventbridge_stream_maxlen 0',
    qr/value must be between 1 and 1000000000/,
    conf(loc => 'eventbridge_stream_maxlen 0; # HERE'));
bad('eventbridge_redis_max_pending 0',
    qr/value must be between 1 and 1048576/,
    conf(http => 'eventbridge_redis_max_pending 0; # HERE'));

# --- eventbridge_allow_referers ------------------------------------------------------------------

for my $c ([ 'a URL', 'http://example.com' ],
           [ 'a host with a port', 'example.com:8080' ],
           [ 'a host with a path', 'example.com/hook' ],
           [ 'a bare "*."', '*.' ],
           [ 'a "*" without dot', '*example.com' ],
           [ 'a wildcard inside', 'a.*.example.com' ],
           [ 'two wildcards', '*.*.example.com' ],
           [ 'a regex', '~^example' ])
{
    my ($name, $pat) = @$c;
    bad("referer pattern: $name", qr/invalid referer host "\Q$pat\E"/,
        conf(loc => "eventbridge_allow_referers example.com \"$pat\"; # HERE"));
}
bad('duplicate eventbridge_allow_referers',
    qr/"eventbridge_allow_referers" directive is duplicate/,
    conf(srv => "eventbridge_allow_referers none;\n"
              . "        eventbridge_allow_referers example.com; # HERE"));

# --- other directives ---------------------------------------------------------------------------

bad('duplicate eventbridge_token', qr/"eventbridge_token" directive is duplicate/,
    conf(loc => "eventbridge_token a;\n"
              . "            eventbridge_token b; # HERE"));
bad('eventbridge_token with two arguments',
    qr/invalid number of arguments in "eventbridge_token" directive/,
    conf(loc => 'eventbridge_token a b; # HERE'));
bad('bad region', qr/invalid value "cn\/hangzhou"/,
    conf(http => 'eventbridge_region cn/hangzhou; # HERE'));
bad('empty account', qr/invalid value ""/,
    conf(srv => 'eventbridge_account ""; # HERE'));
bad('duplicate eventbridge_region', qr/"eventbridge_region" directive is duplicate/,
    conf(loc => "eventbridge_region a;\n"
              . "            eventbridge_region b; # HERE"));
bad('eventbridge_status with an argument',
    qr/invalid number of arguments in "eventbridge_status" directive/,
    conf(srv => 'location /st { eventbridge_status on; } # HERE'));
bad('duplicate eventbridge_status', qr/"eventbridge_status" directive is duplicate/,
    conf(srv => "location /st {\n"
              . "            eventbridge_status;\n"
              . "            eventbridge_status; # HERE\n"
              . "        }"));

# --- eventbridge_console -------------------------------------------------------------------

bad('eventbridge_console with a bad parameter',
    qr/"eventbridge_console" directive: invalid parameter "\/srv\/c": expected "root=PATH"/,
    conf(srv => 'location /c/ { eventbridge_console /srv/c; } # HERE'));
bad('eventbridge_console with an empty root', qr/invalid parameter "root="/,
    conf(srv => 'location /c/ { eventbridge_console root=; } # HERE'));
bad('eventbridge_console with two arguments',
    qr/invalid number of arguments in "eventbridge_console" directive/,
    conf(srv => 'location /c/ { eventbridge_console root=/a root=/b; } # HERE'));
bad('duplicate eventbridge_console', qr/"eventbridge_console" directive is duplicate/,
    conf(srv => "location /c/ {\n"
              . "            eventbridge_console;\n"
              . "            eventbridge_console; # HERE\n"
              . "        }"));
bad('eventbridge_console in a regex location', qr/needs a prefix location/,
    conf(srv => 'location ~ ^/c/ { eventbridge_console; } # HERE'));
bad('eventbridge_console in an exact location', qr/needs a prefix location/,
    conf(srv => 'location = /c { eventbridge_console; } # HERE'));
bad('eventbridge_console in an event endpoint', qr/already an eventbridge endpoint/,
    conf(loc => 'eventbridge_console; # HERE'));
bad('eventbridge_source in a console location', qr/already an eventbridge_console/,
    conf(srv => "location /c/ {\n"
              . "            eventbridge_console;\n"
              . "            eventbridge_source s.c bus=test; # HERE\n"
              . "        }"));
bad('eventbridge_console in a server block',
    qr/"eventbridge_console" directive is not allowed here/,
    conf(srv => 'eventbridge_console; # HERE'));
bad('eventbridge_console without eventbridge_redis',
    qr/"eventbridge_console" needs "eventbridge_redis"/,
    conf(redis => '', source => 'return 204;',
         srv => 'location /c/ { eventbridge_console; allow 127.0.0.1; } # HERE'));

# --- a valid configuration -------------------------------------------------------------------------

{
    my $redis = EBTest::Redis->start;
    my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%% db=0;
    eventbridge_redis_timeout 2s;
    eventbridge_redis_max_pending 64;
    eventbridge_region cn-hangzhou;
    eventbridge_account 1148;
    eventbridge_max_json_depth 32;
    eventbridge_allow_methods POST;

    server {
        listen 127.0.0.1:%%PORT%%;
        eventbridge_allow_ips 127.0.0.0/8 10.0.0.0/8 ::1 2001:db8::/32;
        eventbridge_stream_maxlen 1000;

        location /hook {
            eventbridge_source my.source_1 bus=my-bus.2;
            eventbridge_allow_methods post PUT patch;
            eventbridge_allow_referers example.com *.example.org .example.net none;
            eventbridge_token s3cret;
            eventbridge_max_json_depth 254;
        }
        location /other {
            eventbridge_source "other" "bus=my-bus.2";
            eventbridge_max_json_depth 1;
        }
        location /status { eventbridge_status; }
    }
EOF
    my ($rc, $out) = $ngx->test_conf;
    is($rc, 0, 'nginx -t: valid configuration passes') or diag $out;
    like($out, qr/syntax is ok/, 'nginx -t: syntax is ok');
    like($out, qr/test is successful/, 'nginx -t: test is successful');
    unlike($out, qr/\[(emerg|alert|crit|warn)\]/, 'nginx -t: no complaints');

    $ngx->start;
    my $r = $ngx->request(path => '/hook?token=s3cret', body => '{"ok":true}',
                          headers => ['Content-Type' => 'application/json']);
    is($r->{status}, 200, 'the valid configuration serves an event');
    is($redis->xlen('eb:{my-bus.2}:events'), 1, 'stored in eb:{my-bus.2}:events');
    $ngx->finish;

    # a range with host bits set only warns
    my $w = EBTest::Nginx->new(http => conf(loc => 'eventbridge_allow_ips 127.0.0.1/8; # HERE'));
    ($rc, $out) = $w->test_conf;
    is($rc, 0, 'nginx -t: a range with host bits set passes');
    my $line = line_of($w, '# HERE');
    like($out, qr/\[warn\] low address bits of 127\.0\.0\.1\/8 are meaningless in \Q${\ $w->dir}\E\/nginx\.conf:$line\b/,
         'nginx -t: ... with a warning naming it, the file and the line');
}

done_testing;
