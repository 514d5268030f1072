#!/usr/bin/perl
# The console (`eventbridge_console`): its static files (CSP, no way out
# of root=), and every endpoint of its JSON API over a real nginx and
# Redis: config (every secret masked), overview (ebd's stats hashes,
# consumer-group lag, dead letters), events by id (ebd's index, and the
# entries it has not indexed yet), event and attempt lists (filters,
# caps, cursors), dead letters (page, one, redrive with per-id results,
# checked in Redis), CSRF on the POST, 400/403/404/405 as JSON, event
# content escaped, and the `nginx -t` warning of a console nobody
# restricted. ebd's index and stats keys are written here, as ebd would.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use MIME::Base64 ();
use Time::HiRes qw(time);
use EBTest qw(wait_for write_file);
use EBTest::RedisCluster;

my $JSON = JSON::PP->new->utf8->canonical;

my @SECRETS = qw(pw-SECRET-1 apikey-SECRET-2 SECRET-3q cid-SECRET-4
                 cs-SECRET-5 SECRET-6u SECRET-7q SECRET-8h SECRET-9db
                 SECRET-10r SECRET-11dt SECSECRET-12 SECRET-13tok
                 SECRET-14hv u-SECRET-15);

my $CFG = {
    connections => {
        basic => { type => 'basic', username => 'u-SECRET-15',
                   password => 'pw-SECRET-1' },
        key   => { type => 'api_key', header => 'X-Api-Key',
                   value => 'apikey-SECRET-2' },
        oauth => { type => 'oauth2',
                   token_url => 'https://auth.example.com/token?k=SECRET-3q',
                   client_id => 'cid-SECRET-4', client_secret => 'cs-SECRET-5',
                   scope => 'events' },
    },
    targets => {
        web => { type => 'http',
                 url => 'https://me:SECRET-6u@api.example.com/hook?token=SECRET-7q',
                 headers => { Authorization => 'Bearer SECRET-8h',
                              'X-Other' => 'SECRET-14hv' },
                 connection => 'key' },
        web2 => { type => 'http', url => 'https://api.example.com/b',
                  connection => 'oauth' },
        web3 => { type => 'http', url => 'https://api.example.com/c',
                  connection => 'basic' },
        db => { type => 'mysql', host => '127.0.0.1', user => 'dbuser',
                password => 'SECRET-9db', database => 'd', table => 't',
                columns => { id => '$.id' } },
        chain => { type => 'redis', address => '127.0.0.1:1',
                   stream => 'eb:{other}:events', password => 'SECRET-10r' },
        robot => { type => 'dingtalk',
                   url => 'https://oapi.dingtalk.com/robot/send?access_token=SECRET-11dt',
                   secret => 'SECSECRET-12', msgtype => 'text', text => 'hi' },
    },
    buses => {
        hr => { rules => {
            all => { pattern => { source => [ { prefix => '' } ] },
                     targets => [ map { { target => $_ } }
                                  qw(web web2 web3 db chain robot) ] },
            created => { pattern => { data => { body => { kind => ['created'] } } },
                         targets => [ { target => 'web' } ] },
        } },
        empty => { rules => {} },
    },
};

sub http_conf {
    my ($console) = @_;
    return <<"EOF";
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook {
            eventbridge_source my.src bus=hr;
            eventbridge_token SECRET-13tok;
            eventbridge_token_header X-Token;
            eventbridge_allow_ips 127.0.0.0/8 ::1;
        }
        location /pe { eventbridge_put_events bus=hr; }
        $console
    }
EOF
}

# --- nginx -t: the warning -----------------------------------------------------

{
    my @cases = (
        [ 'no restriction', 'location /console/ { eventbridge_console; }', 1 ],
        [ 'allow/deny', 'location /console/ { eventbridge_console; allow 127.0.0.1; deny all; }', 0 ],
        [ 'auth_basic', 'location /console/ { eventbridge_console; auth_basic "c"; auth_basic_user_file %%DIR%%/htpasswd; }', 0 ],
        [ 'auth_request', 'location /console/ { eventbridge_console; auth_request /auth; } location = /auth { return 204; }', 0 ],
        [ 'deny inherited from the server', 'deny all; location /console/ { eventbridge_console; }', 0 ],
    );
    for my $c (@cases) {
        my ($name, $loc, $warns) = @$c;
        my $n = EBTest::Nginx->new(http => http_conf($loc));
        write_file($n->dir . '/buses.json', $JSON->encode($CFG));
        write_file($n->dir . '/htpasswd', "u:{PLAIN}p\n");
        my ($rc, $out) = $n->test_conf;
        is($rc, 0, "nginx -t passes: $name") or diag $out;
        if ($warns) {
            like($out, qr/\[warn\].*"eventbridge_console" in .*nginx\.conf:\d+: the location has no access restriction/,
                 "nginx -t warns: $name");
        } else {
            unlike($out, qr/no access restriction/, "nginx -t does not warn: $name");
        }
    }
}

# --- the running console --------------------------------------------------------

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => http_conf(<<'EOF'));
        location /console/ {
            eventbridge_console root=%%DIR%%/console;
            allow 127.0.0.1;
            deny all;
        }
        location /locked/ {
            eventbridge_console root=%%DIR%%/console;
            auth_basic "console";
            auth_basic_user_file %%DIR%%/htpasswd;
        }
        location /elsewhere/ {
            eventbridge_console root=%%DIR%%/console;
            allow 192.0.2.1;
            deny all;
        }
EOF
write_file($ngx->dir . '/htpasswd', "admin:{PLAIN}letmein\n");
write_file($ngx->dir . '/buses.json', $JSON->encode($CFG));
mkdir $ngx->dir . '/console';
mkdir $ngx->dir . '/console/js';
write_file($ngx->dir . '/console/index.html', "<!DOCTYPE html><title>c</title>\n");
write_file($ngx->dir . '/console/js/app.js', "console.log(1);\n");
write_file($ngx->dir . '/console/.hidden', "hidden\n");
write_file($ngx->dir . '/secret.txt', "outside-root\n");
$ngx->start;

sub get {
    my ($path, @h) = @_;
    return $ngx->request(method => 'GET', path => $path, headers => \@h);
}

sub api { get("/console/api/$_[0]") }

sub is_json_error {
    my ($r, $status, $what, $re) = @_;
    is($r->{status}, $status, "$what: $status");
    like($r->{headers}{'content-type'} // '', qr{^application/json}, "$what: JSON");
    ok($r->{json} && $r->{json}{errorCode}, "$what: errorCode");
    like($r->{json}{errorMessage} // '', $re, "$what: says why") if $re;
    is($r->{headers}{'x-content-type-options'}, 'nosniff', "$what: nosniff");
}

# --- static files ---------------------------------------------------------------

{
    my $r = get('/console/');
    is($r->{status}, 200, 'static: / is index.html');
    like($r->{body}, qr/<title>c</, 'static: its content');
    like($r->{headers}{'content-type'} // '', qr{^text/html}, 'static: text/html');
    like($r->{headers}{'content-security-policy'} // '', qr/default-src 'self'.*script-src 'self'/,
         'static: a strict CSP');
    unlike($r->{headers}{'content-security-policy'} // '', qr/unsafe-inline|unsafe-eval/,
           'static: CSP without unsafe-*');
    is($r->{headers}{'x-content-type-options'}, 'nosniff', 'static: nosniff');
    ok($r->{headers}{etag}, 'static: ETag, as nginx\'s static files');

    $r = get('/console/js/app.js');
    is($r->{status}, 200, 'static: a file in a subdirectory');
    like($r->{headers}{'content-type'} // '', qr{^text/javascript},
         'static: JavaScript served as such without a types block');

    $r = get('/console/missing.js');
    is($r->{status}, 404, 'static: missing file 404');

    for my $p ('/console/../secret.txt', '/console/%2e%2e/secret.txt',
               '/console/..%2fsecret.txt', '/console/js/../../secret.txt',
               '/console/%2e%2e%2fsecret.txt', '/console/.hidden',
               '/console/js%2f..%2f..%2fsecret.txt', '/console//etc/passwd',
               '/console/%00index.html', '/console/....//secret.txt') {
        my $r = get($p);
        isnt($r->{status}, 200, "traversal refused: $p");
        unlike($r->{body} // '', qr/outside-root|hidden|root:/, "traversal: nothing leaked: $p");
    }

    $r = $ngx->request(method => 'POST', path => '/console/index.html', body => 'x');
    is($r->{status}, 405, 'static: POST 405');
}

# --- nginx's access control runs first --------------------------------------------

{
    my $r = get('/locked/api/config');
    is($r->{status}, 401, 'auth_basic: API refused without credentials');
    unlike($r->{body}, qr/"buses"/, 'auth_basic: nothing of the API');
    $r = get('/locked/api/config', Authorization => 'Basic ' . MIME::Base64::encode_base64('admin:letmein', ''));
    is($r->{status}, 200, 'auth_basic: API with credentials');
    $r = get('/locked/', Authorization => 'Basic ' . MIME::Base64::encode_base64('admin:nope', ''));
    is($r->{status}, 401, 'auth_basic: pages with a wrong password');
    $r = get('/elsewhere/api/csrf');
    is($r->{status}, 403, 'deny: API refused to other addresses');
    unlike($r->{body}, qr/token/, 'deny: no token handed out');

    $r = $ngx->request(method => 'HEAD', path => '/console/api/config');
    is($r->{status}, 200, 'HEAD on the API');
    is($r->{body}, '', 'HEAD: no body');
}

# --- config: every secret masked ----------------------------------------------

{
    my $r = api('config');
    is($r->{status}, 200, 'config: 200');
    like($r->{headers}{'content-type'} // '', qr{^application/json}, 'config: JSON');
    is($r->{headers}{'x-content-type-options'}, 'nosniff', 'config: nosniff');
    like($r->{headers}{'cache-control'} // '', qr/no-store/, 'config: no-store');
    my $j = $r->{json};
    for my $s (@SECRETS) {
        unlike($r->{body}, qr/\Q$s\E/, "config: no secret $s");
    }
    my %t = map { $_->{name} => $_->{spec} } @{ $j->{targets} };
    is($t{web}{url}, 'https://api.example.com/hook', 'config: url without user info and query');
    is($t{web}{headers}{Authorization}, '***', 'config: header value masked');
    is($t{web}{connection}, 'key', 'config: connection name shown');
    is($t{db}{password}, '***', 'config: password masked');
    is($t{db}{host}, '127.0.0.1', 'config: host shown');
    is($t{robot}{url}, 'https://oapi.dingtalk.com/robot/send', 'config: robot token dropped');
    is($t{robot}{secret}, '***', 'config: robot secret masked');
    my %c = map { $_->{name} => $_->{spec} } @{ $j->{connections} };
    is($c{key}{header}, 'X-Api-Key', 'config: api key header name shown');
    is($c{key}{value}, '***', 'config: api key masked');
    is($c{oauth}{client_secret}, '***', 'config: client_secret masked');
    is($c{oauth}{token_url}, 'https://auth.example.com/token', 'config: token_url without query');
    my ($bus) = grep { $_->{name} eq 'hr' } @{ $j->{buses} };
    my ($rule) = grep { $_->{name} eq 'created' } @{ $bus->{rules} };
    is_deeply($rule->{pattern}, { data => { body => { kind => ['created'] } } },
              'config: pattern as JSON');
    is($rule->{targets}[0]{target}, 'web', 'config: rule targets');
    my ($src) = grep { $_->{location} eq '/hook' } @{ $j->{sources} };
    is($src->{name}, 'my.src', 'config: source name');
    is($src->{bus}, 'hr', 'config: source bus');
    is($src->{checks}{token}, 'x-token', 'config: token header, not the token');
    is_deeply($src->{checks}{ips}, ['127.0.0.0/8', '::1/128'], 'config: IPs');
    my ($pe) = grep { $_->{location} eq '/pe' } @{ $j->{sources} };
    is($pe->{kind}, 'put_events', 'config: PutEvents endpoint');
}

# --- events: ingest some, list them ------------------------------------------------

my @ids;
my $xss = '"><img src=x onerror=alert(1)><script>alert(2)</script>&amp;';
for my $i (1 .. 5) {
    my $r = $ngx->request(method => 'POST', path => '/hook',
                          headers => ['X-Token' => 'SECRET-13tok',
                                      'Content-Type' => 'application/json'],
                          body => $JSON->encode({ n => $i, html => $xss,
                                                  kind => $i == 5 ? 'created' : 'other' }));
    is($r->{status}, 200, "ingest $i") or diag $r->{body};
    push @ids, $r->{json}{eventId};
}

my $entries = $redis->xrange('eb:{hr}:events');
is(scalar @$entries, 5, 'five events in the stream');
my %entry_of = map { $JSON->decode($_->[1]{event})->{id} => $_->[0] } @$entries;

{
    my $r = api('events?bus=hr');
    is($r->{status}, 200, 'events: 200');
    my $items = $r->{json}{items};
    is(scalar @$items, 5, 'events: all five');
    is($items->[0]{id}, $ids[4], 'events: newest first');
    is($items->[0]{entry}, $entry_of{$ids[4]}, 'events: the entry id');
    ok($items->[0]{time} > 0, 'events: entry time');
    is_deeply($items->[0]{rules}, ['all', 'created'], 'events: matched rules');
    is($r->{json}{next}, undef, 'events: no next page');

    $r = api('events?bus=hr&limit=2');
    is(scalar @{ $r->{json}{items} }, 2, 'events: limit=2');
    my $next = $r->{json}{next};
    ok($next, 'events: a cursor');
    $r = api("events?bus=hr&limit=2&cursor=$next");
    is_deeply([ map { $_->{id} } @{ $r->{json}{items} } ], [ @ids[2, 1] ],
              'events: the next page from the cursor');

    $r = api('events?bus=hr&rule=created');
    is_deeply([ map { $_->{id} } @{ $r->{json}{items} } ], [ $ids[4] ], 'events: rule filter');
    $r = api('events?bus=hr&type=eventbridge:Events:HTTPEvent&source=my.src');
    is(scalar @{ $r->{json}{items} }, 5, 'events: type and source filters');
    $r = api('events?bus=hr&type=nope');
    is_deeply($r->{json}{items}, [], 'events: type filter');
    $r = api('events?bus=hr&source=nope');
    is_deeply($r->{json}{items}, [], 'events: source filter');
    like($items->[0]{event_time}, qr/^\d{4}-/, 'events: the CloudEvent time');
    my $t = $items->[2]{time};
    $r = api("events?bus=hr&from=$entry_of{$ids[2]}&to=$entry_of{$ids[3]}");
    is_deeply([ map { $_->{id} } @{ $r->{json}{items} } ], [ @ids[3, 2] ], 'events: from/to');
}

# --- one event: through the index, and not indexed yet --------------------------

my ($trace_id, $trace_id2);
{
    my $e = $entry_of{$ids[4]};
    my ($ms) = $e =~ /^(\d+)/;
    my $hour = int($ms / 3600000);
    $trace_id = $redis->cmd('XADD', 'eb:{hr}:trace', '*', event => $ids[4],
                            target => 'web', rule => 'created', entry => '1-1',
                            attempt => 1, outcome => 'retry', status => 503,
                            latency_us => 1234, error => "HTTP 503 <b>down</b>");
    $trace_id2 = $redis->cmd('XADD', 'eb:{hr}:trace', '*', event => $ids[4],
                             target => 'web', rule => 'created', entry => '1-1',
                             attempt => 2, outcome => 'delivered', status => 200,
                             latency_us => 999, error => '');
    $redis->cmd('HSET', "eb:{hr}:idx:$hour", $ids[4], "e:$e t:$trace_id t:$trace_id2");
    $redis->cmd('SET', 'eb:{hr}:idx:cursor', $entry_of{$ids[4]});

    my $r = api("events/$ids[4]?bus=hr");
    is($r->{status}, 200, 'event: 200') or diag $r->{body};
    my $j = $r->{json};
    is($j->{id}, $ids[4], 'event: id');
    is($j->{entry}, $e, 'event: entry');
    ok($j->{indexed}, 'event: found through the index');
    my $ev = $JSON->decode($j->{event});
    is($ev->{id}, $ids[4], 'event: the CloudEvent (as JSON text)');
    is($ev->{data}{body}{html} // $ev->{data}{html}, $xss, 'event: content intact once decoded');
    is_deeply($j->{rules}, ['all', 'created'], 'event: rules');
    is(scalar @{ $j->{attempts} }, 2, 'event: two attempts');
    is($j->{attempts}[0]{status}, 503, 'event: attempt status');
    is($j->{attempts}[0]{latency_us}, 1234, 'event: latency');
    is($j->{attempts}[1]{outcome}, 'delivered', 'event: outcome');
    is($j->{attempts}[0]{error}, 'HTTP 503 <b>down</b>', 'event: error text');
    unlike($r->{body}, qr/[<>]/, 'event: no raw < or > in the answer');
    like($r->{body}, qr/\\u003cscript\\u003e/, 'event: <script> as \\u003c escapes');

    # ids[0] is before the cursor and not indexed: not found; after
    # moving the cursor back, found by the scan
    $r = api("events/$ids[0]?bus=hr");
    is_json_error($r, 404, 'event: not indexed, before the cursor');
    $redis->cmd('DEL', 'eb:{hr}:idx:cursor');
    $r = api("events/$ids[0]?bus=hr");
    is($r->{status}, 200, 'event: no index cursor: the newest entries are scanned');
    ok(!$r->{json}{indexed}, 'event: says not indexed');
    is($JSON->decode($r->{json}{event})->{id}, $ids[0], 'event: the right one');
    $redis->cmd('SET', 'eb:{hr}:idx:cursor', '0-1');
    $r = api("events/$ids[1]?bus=hr");
    is($r->{status}, 200, 'event: after the cursor: scanned');

    # an id with characters a path must encode
    my $odd = 'we/ird id%41<x>';
    my $oe = $redis->cmd('XADD', 'eb:{hr}:events', '*',
                         event => $JSON->encode({ id => $odd, source => 's', type => 't' }),
                         rules => 'all');
    my ($oms) = $oe =~ /^(\d+)/;
    $redis->cmd('HSET', 'eb:{hr}:idx:' . int($oms / 3600000), $odd, "e:$oe");
    $r = api('events/we%2Fird%20id%2541%3Cx%3E?bus=hr');
    is($r->{status}, 200, 'event: an id with "/", " ", "%" and "<>"') or diag $r->{body};
    is($r->{json}{id}, $odd, 'event: decoded once');

    # a bus that keeps its events for months: its index buckets older
    # than the 8 days of the first step are looked at too, back to its
    # oldest event (here 40 days, two steps more)
    my $old_ms = (int(time()) - 40 * 86400) * 1000;
    my $old_id = "$old_ms-0";
    $redis->cmd('XADD', 'eb:{empty}:events', $old_id,
                event => $JSON->encode({ id => 'forty-days', source => 's', type => 't' }),
                rules => '');
    my $today = $redis->cmd('XADD', 'eb:{empty}:events', '*',
                event => $JSON->encode({ id => 'today', source => 's', type => 't' }),
                rules => '');
    $redis->cmd('HSET', 'eb:{empty}:idx:' . int($old_ms / 3600000), 'forty-days', "e:$old_id");
    $redis->cmd('SET', 'eb:{empty}:idx:cursor', $today);
    $r = api('events/forty-days?bus=empty');
    is($r->{status}, 200, 'event: indexed 40 days ago, found') or diag $r->{body};
    ok($r->{json}{indexed}, 'event: 40 days ago: through the index');
    is($r->{json}{entry}, $old_id, 'event: 40 days ago: its entry');
    $redis->cmd('HDEL', 'eb:{empty}:idx:' . int($old_ms / 3600000), 'forty-days');
    $r = api('events/forty-days?bus=empty');
    is_json_error($r, 404, 'event: 40 days ago, no longer indexed: not found');
    $redis->cmd('DEL', 'eb:{empty}:events', 'eb:{empty}:idx:cursor');

    $r = api('events/no-such-id?bus=hr');
    is_json_error($r, 404, 'event: unknown id');
    $r = api('events/' . ('x' x 300) . '?bus=hr');
    is_json_error($r, 400, 'event: id too long');
}

# --- attempts ------------------------------------------------------------------

{
    my $r = api('attempts?bus=hr');
    is($r->{status}, 200, 'attempts: 200');
    is_deeply([ map { $_->{entry} } @{ $r->{json}{items} } ], [ $trace_id2, $trace_id ],
              'attempts: newest first');
    $r = api('attempts?bus=hr&outcome=retry');
    is_deeply([ map { $_->{entry} } @{ $r->{json}{items} } ], [ $trace_id ], 'attempts: outcome filter');
    $r = api('attempts?bus=hr&target=db');
    is_deeply($r->{json}{items}, [], 'attempts: target filter');
    $r = api("attempts?bus=hr&event=$ids[4]&limit=1");
    is(scalar @{ $r->{json}{items} }, 1, 'attempts: event filter, limit');
    is($r->{json}{next}, $trace_id2, 'attempts: cursor');
}

# --- overview --------------------------------------------------------------------

{
    my $now = time;
    my $m = int($now / 60);
    my $h = int($now / 3600);
    $redis->cmd('HSET', "eb:{hr}:stats:m:$m", accepted => 60, matched => 50,
                'delivered:web' => 40, 'failed:web' => 2, 'retried:db' => 3);
    $redis->cmd('HSET', "eb:{hr}:stats:m:" . ($m - 10), accepted => 6);
    $redis->cmd('HSET', "eb:{hr}:stats:m:" . ($m - 70), accepted => 1000);   # outside the hour
    $redis->cmd('HSET', "eb:{hr}:stats:h:$h", accepted => 500, 'delivered:web' => 7,
                'backlog:web' => 11, 'dlq:web' => 4);
    # ebd's samples of the backlog and the dead letters (ebd_stats_sample.c)
    $redis->cmd('HSET', "eb:{hr}:stats:m:" . ($m - 5), 'backlog:web' => 9, 'dlq:web' => 1);
    $redis->cmd('XGROUP', 'CREATE', 'eb:{hr}:target:web', 'ebd', '0', 'MKSTREAM');
    $redis->cmd('XADD', 'eb:{hr}:target:web', '*', event => '{}', rule => 'x') for 1 .. 3;
    $redis->cmd('XADD', 'eb:{hr}:dlq:db', '*', event => '{}', rule => 'all') for 1 .. 2;

    my $r = api('overview?bus=hr');
    is($r->{status}, 200, 'overview: 200') or diag $r->{body};
    my $j = $r->{json};
    is($j->{range}, 'hour', 'overview: the hour by default');
    is(scalar @{ $j->{series} }, 60, 'overview: 60 minutes');
    is($j->{totals}{accepted}, 66, 'overview: accepted over the hour');
    is($j->{totals}{delivered}, 40, 'overview: delivered summed over targets');
    is($j->{series}[-1]{accepted}, 60, 'overview: the current minute');
    my %t = map { $_->{name} => $_ } @{ $j->{targets} };
    is($t{web}{delivered}, 40, 'overview: per target delivered');
    is($t{web}{failed}, 2, 'overview: per target failed');
    is($t{db}{retried}, 3, 'overview: per target retried');
    is($t{web}{lag}, $redis->xlen('eb:{hr}:target:web'),
       'overview: consumer group lag (nothing read yet: the whole stream)');
    $redis->cmd('XREADGROUP', 'GROUP', 'ebd', 'c1', 'COUNT', 2, 'STREAMS',
                'eb:{hr}:target:web', '>');
    $r = api('overview?bus=hr');
    is({ map { $_->{name} => $_ } @{ $r->{json}{targets} } }->{web}{pending}, 2,
       'overview: pending entries of the group');
    is($t{db}{lag}, undef, 'overview: no stream yet: lag null');
    is($t{db}{dead_letters}, 2, 'overview: dead letters');
    ok($j->{per_second}{accepted} > 0, 'overview: a rate');

    my @ws = @{ $t{web}{series} };
    is(scalar @ws, 60, 'overview: a target\'s samples, a minute each');
    is_deeply([ @{ $ws[-6] }{qw(backlog dead_letters)} ], [ 9, 1 ],
              'overview: the backlog and dead letters ebd sampled five minutes ago');
    is_deeply([ @{ $ws[-1] }{qw(backlog dead_letters)} ], [ undef, undef ],
              'overview: null where no sample was taken');

    $r = api('overview?bus=hr&range=day');
    is(scalar @{ $r->{json}{series} }, 24, 'overview: 24 hours');
    is($r->{json}{totals}{accepted}, 500, 'overview: day from the hour hashes');
    my ($wd) = grep { $_->{name} eq 'web' } @{ $r->{json}{targets} };
    is_deeply([ @{ $wd->{series}[-1] }{qw(backlog dead_letters)} ], [ 11, 4 ],
              'overview: the day, the hour\'s last sample');
    $redis->cmd('DEL', 'eb:{hr}:dlq:db');
}

# --- dead letters ----------------------------------------------------------------------

my @letters;
{
    for my $i (1 .. 4) {
        push @letters, $redis->cmd('XADD', 'eb:{hr}:dlq:web', '*',
                                   event => $JSON->encode({ id => "dead-$i", x => '<script>' }),
                                   rule => 'all', target => 'web', entry => "9-$i",
                                   attempts => 4, status => 500, error => 'HTTP 500',
                                   failed_ms => 1700000000000);
    }
    my $r = api('dlq?bus=hr&target=web');
    is($r->{status}, 200, 'dlq: 200') or diag $r->{body};
    is($r->{json}{total}, 4, 'dlq: total');
    is_deeply([ map { $_->{entry} } @{ $r->{json}{items} } ], \@letters, 'dlq: oldest first');
    is($r->{json}{items}[0]{event_id}, 'dead-1', 'dlq: the event id');
    is($r->{json}{items}[0]{status}, 500, 'dlq: status');
    is($r->{json}{items}[0]{attempts}, 4, 'dlq: attempts');
    ok(!exists $r->{json}{items}[0]{event}, 'dlq: no event bodies in the list');

    $r = api('dlq?bus=hr&target=web&limit=3');
    is($r->{json}{next}, $letters[2], 'dlq: cursor');
    $r = api("dlq?bus=hr&target=web&limit=3&cursor=$letters[2]");
    is_deeply([ map { $_->{entry} } @{ $r->{json}{items} } ], [ $letters[3] ], 'dlq: next page');

    $r = api("dlq/$letters[1]?bus=hr&target=web");
    is($r->{status}, 200, 'dlq: one letter');
    is($JSON->decode($r->{json}{letter}{event})->{id}, 'dead-2', 'dlq: with its event');
    unlike($r->{body}, qr/<script>/, 'dlq: event escaped');
    $r = api("dlq/1-1?bus=hr&target=web");
    is_json_error($r, 404, 'dlq: no such letter');
    $r = api("dlq/abc?bus=hr&target=web");
    is_json_error($r, 400, 'dlq: bad letter id');
    # Redis answers the lone XRANGE with an error (a key of the wrong
    # type): a bad gateway, in Redis' words, not "did not answer"
    $redis->cmd('SET', 'eb:{hr}:dlq:db', 'not a stream');
    $r = api("dlq/1-1?bus=hr&target=db");
    is_json_error($r, 502, 'dlq: an error reply', qr/redis answered: WRONGTYPE/);
    $redis->cmd('DEL', 'eb:{hr}:dlq:db');
    $r = api("dlq?bus=hr&target=nope");
    is_json_error($r, 404, 'dlq: unknown target', qr/nope/);
    $r = api("dlq?bus=hr");
    is_json_error($r, 400, 'dlq: target missing', qr/"target"/);
}

# --- redrive and CSRF --------------------------------------------------------------------

sub post_redrive {
    my ($body, @h) = @_;
    return $ngx->request(method => 'POST', path => '/console/api/dlq/redrive',
                         headers => ['Content-Type' => 'application/json', @h],
                         body => ref $body ? $JSON->encode($body) : $body);
}

{
    my $tok = api('csrf');
    is($tok->{status}, 200, 'csrf: a token');
    my $t = $tok->{json}{token};
    like($t, qr/^[0-9a-f]{16}\.[0-9a-f]{64}$/, 'csrf: TIME.MAC');
    is($tok->{json}{header}, 'X-EB-CSRF', 'csrf: the header to send it in');

    my $body = { bus => 'hr', target => 'web', ids => [ $letters[0] ] };
    is_json_error(post_redrive($body), 403, 'redrive: no token');
    is_json_error(post_redrive($body, 'X-EB-CSRF' => 'f' x 16 . '.' . '0' x 64), 403,
                  'redrive: forged token');
    (my $bad = $t) =~ s/.$/$& eq '0' ? '1' : '0'/e;
    is_json_error(post_redrive($body, 'X-EB-CSRF' => $bad), 403, 'redrive: altered MAC');
    is_json_error(post_redrive($body, 'X-EB-CSRF' => $t, Origin => 'https://evil.example'),
                  403, 'redrive: cross-site Origin');
    is_json_error(post_redrive($body, 'X-EB-CSRF' => $t, 'Sec-Fetch-Site' => 'cross-site'),
                  403, 'redrive: Sec-Fetch-Site cross-site');
    is($redis->xlen('eb:{hr}:dlq:web'), 4, 'redrive: refused ones moved nothing');

    my $before = $redis->xlen('eb:{hr}:target:web');
    my $r = post_redrive({ bus => 'hr', target => 'web', ids => [ $letters[0], '1-1' ] },
                         'X-EB-CSRF' => $t, Origin => 'http://localhost',
                         'Sec-Fetch-Site' => 'same-origin');
    is($r->{status}, 200, 'redrive: 200') or diag $r->{body};
    is($r->{json}{moved}, 1, 'redrive: one moved');
    is($r->{json}{results}[0]{id}, $letters[0], 'redrive: result per id');
    ok($r->{json}{results}[0]{ok}, 'redrive: ok');
    ok(!$r->{json}{results}[1]{ok}, 'redrive: unknown id not ok');
    is($r->{json}{remaining}, 3, 'redrive: remaining');
    is($redis->xlen('eb:{hr}:dlq:web'), 3, 'redrive: Redis: out of the dlq');
    is($redis->xlen('eb:{hr}:target:web'), $before + 1, 'redrive: Redis: into the target stream');
    my $moved = $redis->cmd('XRANGE', 'eb:{hr}:target:web', $r->{json}{results}[0]{entry},
                            $r->{json}{results}[0]{entry});
    my %f = @{ $moved->[0][1] };
    is($JSON->decode($f{event})->{id}, 'dead-1', 'redrive: the event moved');
    is($f{rule}, 'all', 'redrive: with its rule');

    $r = post_redrive({ bus => 'hr', target => 'web', all => JSON::PP::true }, 'X-EB-CSRF' => $t);
    is($r->{json}{moved}, 3, 'redrive: all');
    is($redis->xlen('eb:{hr}:dlq:web'), 0, 'redrive: Redis: dlq empty');

    is_json_error(post_redrive('{nope', 'X-EB-CSRF' => $t), 400, 'redrive: bad JSON');
    is_json_error(post_redrive('{"bus":"hr","pad":"' . ('x' x 70000) . '"}', 'X-EB-CSRF' => $t),
                  413, 'redrive: body over 64 KiB');
    my $big = '{"bus":"hr","pad":"' . ('x' x 70000) . '"}';
    is_json_error(post_redrive(sprintf("%x\r\n%s\r\n0\r\n\r\n", length $big, $big),
                               'X-EB-CSRF' => $t, 'Transfer-Encoding' => 'chunked'),
                  413, 'redrive: chunked body over 64 KiB');
    is_json_error(post_redrive({ bus => 'hr', target => 'web' }, 'X-EB-CSRF' => $t), 400,
                  'redrive: neither ids nor all', qr/"ids"/);
    is_json_error(post_redrive({ bus => 'hr', target => 'web', ids => [ map { "$_-0" } 1 .. 101 ] },
                               'X-EB-CSRF' => $t), 400, 'redrive: over 100 ids');
    is_json_error(post_redrive({ bus => 'hr', target => 'web', ids => ['1-0 OR'] },
                               'X-EB-CSRF' => $t), 400, 'redrive: bad id');
    is_json_error(post_redrive({ bus => 'hr', target => 'nope', ids => ['1-0'] },
                               'X-EB-CSRF' => $t), 404, 'redrive: unknown target');
    is_json_error(post_redrive({ bus => 'x y', target => 'web', ids => ['1-0'] },
                               'X-EB-CSRF' => $t), 400, 'redrive: bad bus', qr/"bus"/);

    $r = $ngx->request(method => 'POST', path => '/console/api/events?bus=hr', body => '{}');
    is_json_error($r, 405, 'POST to a read endpoint');
}

# --- parameters: 400 / 404 as JSON --------------------------------------------------------

{
    my @bad = (
        [ 'events', 400, qr/"bus"/ ],
        [ 'events?bus=a%20b', 400, qr/"bus"/ ],
        [ 'events?bus=nope', 404, qr/nope/ ],
        [ 'events?bus=hr&limit=0', 400, qr/"limit"/ ],
        [ 'events?bus=hr&limit=101', 400, qr/"limit"/ ],
        [ 'events?bus=hr&limit=abc', 400, qr/"limit"/ ],
        [ 'events?bus=hr&from=yesterday', 400, qr/"from"/ ],
        [ 'events?bus=hr&to=1-2-3', 400, qr/"to"/ ],
        [ 'events?bus=hr&cursor=%2B', 400, qr/"cursor"/ ],
        [ 'events?bus=hr&cursor=0-0', 400, qr/"cursor"/ ],
        [ 'events?bus=hr&from=18446744073709551616', 400, qr/"from"/ ],
        [ 'dlq?bus=hr&target=web&cursor=(1-0', 400, qr/"cursor"/ ],
        [ 'events?bus=hr&type=' . ('t' x 300), 400, qr/"type"/ ],
        [ 'attempts?bus=hr&limit=-1', 400, qr/"limit"/ ],
        [ 'overview?bus=hr&range=week', 400, qr/"range"/ ],
        [ 'overview?bus=nope', 404, qr/nope/ ],
        [ 'dlq?bus=hr&target=web&limit=1000', 400, qr/"limit"/ ],
        [ 'nothing', 404, qr/endpoint/ ],
        [ 'events/x/y?bus=hr', 404, undef ],
    );
    for my $b (@bad) {
        my ($path, $status, $re) = @$b;
        is_json_error(api($path), $status, "api/$path", $re);
    }
    my $r = $ngx->request(method => 'PUT', path => '/console/api/config', body => '');
    is_json_error($r, 405, 'PUT 405');
}

# --- caps: a page never exceeds limit, a filtered scan reads at most 500 ---------

{
    my @cmds = map { [ 'XADD', 'eb:{hr}:events', '*', event => '{"id":"bulk-' . $_ . '","source":"s","type":"bulk"}', rules => 'all' ] } 1 .. 700;
    $redis->pipeline(@cmds);
    my $r = api('events?bus=hr&limit=100');
    is(scalar @{ $r->{json}{items} }, 100, 'cap: limit 100');
    $r = api('events?bus=hr&rule=created&limit=100');
    is($r->{json}{scanned}, 500, 'cap: a filtered page scans 500 entries');
    is_deeply($r->{json}{items}, [], 'cap: none matched within them');
    ok($r->{json}{next}, 'cap: and says where to go on');
    my $next = $r->{json}{next};
    $r = api("events?bus=hr&rule=created&limit=100&cursor=$next");
    is_deeply([ map { $_->{id} } @{ $r->{json}{items} } ], [ $ids[4] ], 'cap: the next scan finds it');
}

# --- a bus with no targets, unknown paths ------------------------------------------------

{
    my $r = api('overview?bus=empty');
    is($r->{status}, 200, 'overview: a bus without rules');
    is_deeply($r->{json}{targets}, [], 'overview: no targets');
}

$ngx->finish;

# --- Redis Cluster: every request's keys in its bus's slot ---------------------------

{
    my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 1,
                                        node_timeout => 1000);
    my @bus = $c->bus_names(2, 'cs');
    my $cfg = { targets => { t => { type => 'http', url => 'https://x.example/' } },
                buses => { map { $_ => { rules => { r => {
                    pattern => { source => [ { prefix => '' } ] },
                    targets => [ { target => 't' } ] } } } } @bus } };
    my $cn = EBTest::Nginx->new(http => <<"EOF");
    eventbridge_redis cluster ${\ join ' ', ($c->seeds)[0, 1] };
    eventbridge_redis_timeout 3s;
    eventbridge_redis_wait 1 1s;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /a { eventbridge_source a.src bus=$bus[0]; }
        location /b { eventbridge_source b.src bus=$bus[1]; }
        location /console/ { eventbridge_console; allow 127.0.0.1; deny all; }
    }
EOF
    write_file($cn->dir . '/buses.json', $JSON->encode($cfg));
    $cn->start;
    my $capi = sub { $cn->request(method => 'GET', path => "/console/api/$_[0]") };

    for my $i (0, 1) {
        my $b = $bus[$i];
        my $r = $cn->request(method => 'POST', path => $i ? '/b' : '/a',
                             headers => ['Content-Type' => 'application/json'],
                             body => '{"k":1}');
        is($r->{status}, 200, "cluster $b: ingest");
        my $id = $r->{json}{eventId};
        my $entry = $c->xrange("eb:{$b}:events")->[0][0];
        my ($ms) = $entry =~ /^(\d+)/;
        $c->cmd_key("eb:{$b}:x", 'HSET', "eb:{$b}:idx:" . int($ms / 3600000), $id, "e:$entry");
        $c->cmd_key("eb:{$b}:x", 'HSET', "eb:{$b}:stats:m:" . int(time / 60), accepted => 7);
        $c->cmd_key("eb:{$b}:x", 'XADD', "eb:{$b}:dlq:t", '*', event => '{"id":"d"}', rule => 'r');

        $r = $capi->("events?bus=$b");
        is($r->{json}{items}[0]{id}, $id, "cluster $b: events list");
        $r = $capi->("events/$id?bus=$b");
        is($r->{json}{entry}, $entry, "cluster $b: event by id (193 HGETs in one slot)")
            or diag "$r->{status} $r->{body}";
        $r = $capi->("overview?bus=$b");
        is($r->{json}{totals}{accepted}, 7, "cluster $b: overview");
        is($r->{json}{targets}[0]{dead_letters}, 1, "cluster $b: dead letters");
        my $t = $capi->('csrf')->{json}{token};
        $r = $cn->request(method => 'POST', path => '/console/api/dlq/redrive',
                          headers => ['Content-Type' => 'application/json', 'X-EB-CSRF' => $t],
                          body => $JSON->encode({ bus => $b, target => 't', all => JSON::PP::true }));
        is($r->{json}{moved}, 1, "cluster $b: redrive (with eventbridge_redis_wait)")
            or diag $r->{body};
        is($c->xlen("eb:{$b}:dlq:t"), 0, "cluster $b: dlq emptied");
    }
    $cn->finish;
}

done_testing;
