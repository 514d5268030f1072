#!/usr/bin/perl
# The status location: Prometheus text format, counters shared by all
# workers, one rejection reason per refusal, GET and HEAD only.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep);
use EBTest qw(wait_for);

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, workers => 2, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    log_format eb_pid '$pid $status $uri';
    server {
        # reuseport: the kernel spreads connections over both workers
        listen 127.0.0.1:%%PORT%% reuseport;
        access_log %%DIR%%/logs/pid.log eb_pid;
        client_max_body_size 1k;

        location /hook { eventbridge_source m.src bus=metrics; }
        location /token {
            eventbridge_source m.src bus=metrics;
            eventbridge_token s3cret;
        }
        location /ips {
            eventbridge_source m.src bus=metrics;
            eventbridge_allow_ips 10.0.0.0/8;
        }
        location /referer {
            eventbridge_source m.src bus=metrics;
            eventbridge_allow_referers example.com;
        }
        location /shallow {
            eventbridge_source m.src bus=metrics;
            eventbridge_max_json_depth 2;
        }
        location /status { eventbridge_status; }
    }
EOF
$ngx->start;

my @REASONS = qw(method address referer token body_too_large invalid_json
                 json_too_deep invalid_utf8 unavailable invalid_event
                 missing_key signature);
my @KINDS = qw(disconnected queue_full timeout reply_error connection_lost);

sub status_page { $ngx->request(method => $_[0] // 'GET', path => '/status') }

# the page as Prometheus's parser reads it: dies if it would refuse it
sub metrics { $ngx->metrics }

sub rej { 'eventbridge_events_rejected_total{reason="' . $_[0] . '"}' }
sub rerr { 'eventbridge_redis_errors_total{kind="' . $_[0] . '"}' }
use constant ACC => 'eventbridge_events_accepted_total';

# --- format ------------------------------------------------------------------

{
    my $r = status_page();
    is($r->{status}, 200, 'status: 200');
    like($r->{headers}{'content-type'} // '', qr{^text/plain(;|$)},
         'status: text/plain');
    like($r->{headers}{'content-type'} // '', qr{version=0\.0\.4},
         'status: Prometheus text format version 0.0.4');

    my $body = $r->{body};
    like($body, qr/\n\z/, 'status: ends with a newline');

    # Prometheus's parser (dies on what it cannot read) is lenient about
    # the rest: every family must come with HELP and TYPE (it makes an
    # untyped one of a sample that has none), once, and every sample once
    my ($m, $families) = EBTest::prometheus($body);
    my (%type, %seen, @bad);
    for my $f (@$families) {
        push @bad, "family $f->{name} more than once" if $type{$f->{name}};
        $type{$f->{name}} = $f->{type};
        push @bad, "$f->{name}: no HELP" unless length $f->{help};
        push @bad, "$f->{name}: no TYPE (or type $f->{type})"
            unless $f->{type} =~ /^(counter|histogram)$/;
        for my $s (@{ $f->{samples} }) {
            my $k = join ',', $s->{name},
                map { "$_=$s->{labels}{$_}" } sort keys %{ $s->{labels} };
            push @bad, "duplicate sample $k" if $seen{$k}++;
        }
    }
    is(scalar @bad, 0, 'status: every family has HELP and TYPE, once; '
                       . 'every sample appears once') or diag(join "\n", @bad);
    is(scalar(keys %seen), scalar(grep { /^[^#]/ } split /\n/, $body),
       'status: every sample line was read');

    # the parser names a counter family without its _total
    for my $name (qw(eventbridge_events_accepted eventbridge_events_rejected
                     eventbridge_events_deduplicated
                     eventbridge_signature_failures eventbridge_redis_errors
                     eventbridge_redis_redirections eventbridge_redis_retries
                     eventbridge_redis_topology_refreshes
                     eventbridge_redis_watchdog_drops
                     eventbridge_redis_wait_failures
                     eventbridge_bus_events_accepted
                     eventbridge_bus_events_deduplicated
                     eventbridge_bus_events_rejected
                     eventbridge_source_events_accepted
                     eventbridge_source_events_deduplicated
                     eventbridge_source_events_rejected))
    {
        is($type{$name}, 'counter', "${name}_total: a counter");
    }
    is($type{eventbridge_append_duration_seconds}, 'histogram',
       'eventbridge_append_duration_seconds: a histogram');

    is($m->{+ACC}, 0, 'accepted_total starts at 0');
    is(scalar(grep { defined $m->{rej($_)} } @REASONS), scalar @REASONS,
       'rejected_total has every reason: ' . join(' ', @REASONS));
    is(scalar(grep { defined $m->{rerr($_)} } @KINDS), scalar @KINDS,
       'redis_errors_total has every kind: ' . join(' ', @KINDS));
    is(scalar(grep { $m->{$_} != 0 } keys %$m), 0, 'all counters start at 0');
}

# --- GET/HEAD only -----------------------------------------------------------

{
    my $r = status_page('HEAD');
    is($r->{status}, 200, 'HEAD /status: 200');
    is($r->{body}, '', 'HEAD /status: no body');

    for my $method (qw(POST PUT DELETE)) {
        my $r = $ngx->request(method => $method, path => '/status',
                              body => 'x');
        is($r->{status}, 405, "$method /status: 405");
        # RFC 9110 15.5.6: a 405 response MUST carry Allow
        my $allow = $r->{headers}{allow} // '';
        ok($allow =~ /\bGET\b/ && $allow =~ /\bHEAD\b/ && $allow !~ /POST/,
           "$method /status: Allow lists GET and HEAD")
            or diag("Allow: '$allow'") if $method eq 'POST';
    }

    $r = $ngx->request(method => 'GET', path => '/status?x=1');
    is($r->{status}, 200, 'GET /status with a query string: 200');
}

# --- accepted: exactly the 200s, over both workers ---------------------------

my $N = 60;
{
    my $before = metrics()->{+ACC};
    my $ok = 0;
    for my $i (1 .. $N) {
        my $r = $ngx->request(method => 'POST', path => '/hook',
                              headers => ['Content-Type' => 'application/json'],
                              body => qq({"i":$i}));
        $ok++ if $r->{status} == 200;
    }
    is($ok, $N, "$N events answered with 200");
    is(metrics()->{+ACC} - $before, $ok, 'accepted_total grew by exactly the 200s');
    is($redis->xlen('eb:{metrics}:events'), $ok, 'and the stream holds them');

    # the same value whichever worker serves the status page
    my %vals;
    $vals{ metrics()->{+ACC} // 'none' }++ for 1 .. 10;
    is_deeply([keys %vals], [$ok], 'every worker reports the same total');

    my %pids;
    sleep 0.2;
    if (open my $fh, '<', $ngx->dir . '/logs/pid.log') {
        while (<$fh>) { $pids{$1}++ if m{^(\d+) 200 /hook$} }
    }
    my @w = $ngx->worker_pids;
    is(scalar @w, 2, 'two workers');
    is(scalar(grep { $pids{$_} } @w), 2,
       'both workers answered some of the events')
        or diag('events by worker pid: '
                . join ', ', map { "$_: $pids{$_}" } keys %pids);
}

# --- rejections, one reason each ---------------------------------------------

{
    my $m0 = metrics();
    my %want;
    my $check = sub {
        my ($what, $r, $status, $reason) = @_;
        is($r->{status}, $status, "$what: $status");
        $want{$reason}++;
    };

    for (1 .. 3) {
        $check->('GET on a source', $ngx->request(method => 'GET',
                 path => '/hook'), 405, 'method');
    }
    $check->('PUT on a source', $ngx->request(method => 'PUT', path => '/hook',
             body => '{}'), 405, 'method');
    $check->('wrong token', $ngx->request(path => '/token?token=nope',
             body => '{}'), 401, 'token');
    $check->('no token', $ngx->request(path => '/token', body => '{}'),
             401, 'token');
    $check->('address not allowed', $ngx->request(path => '/ips',
             body => '{}'), 403, 'address');
    $check->('referer not allowed', $ngx->request(path => '/referer',
             headers => [Referer => 'http://evil.example.org/'],
             body => '{}'), 403, 'referer');
    $check->('body too large', $ngx->request(path => '/hook',
             body => 'x' x 2048), 413, 'body_too_large');
    $check->('invalid JSON', $ngx->request(path => '/hook',
             headers => ['Content-Type' => 'application/json'],
             body => '{"a":'), 400, 'invalid_json');
    $check->('JSON too deep', $ngx->request(path => '/shallow',
             headers => ['Content-Type' => 'application/json'],
             body => '{"a":{"b":{"c":1}}}'), 400, 'json_too_deep');
    $check->('invalid UTF-8', $ngx->request(path => '/hook',
             headers => ['Content-Type' => 'text/plain'],
             body => "abc\xff\xfe"), 400, 'invalid_utf8');

    my $m = metrics();
    for my $reason (@REASONS) {
        is($m->{rej($reason)} - $m0->{rej($reason)}, $want{$reason} // 0,
           "rejected_total{reason=\"$reason\"} grew by " . ($want{$reason} // 0));
    }
    is($m->{+ACC}, $m0->{+ACC}, 'rejections are not accepted');
    is(scalar(grep { $m->{rerr($_)} } @KINDS), 0, 'no redis errors counted');
}

# --- unavailable, counted once per 503 ---------------------------------------

{
    my $m0 = metrics();
    $redis->stop;
    my $n503 = 0;
    for (1 .. 3) {
        my $r = $ngx->request(path => '/hook', body => '{}');
        $n503++ if $r->{status} == 503;
    }
    is($n503, 3, 'redis down: 503s');
    my $m = metrics();
    is($m->{rej('unavailable')} - $m0->{rej('unavailable')}, 3,
       'rejected_total{reason="unavailable"} grew by 3');
    my $errs = 0;
    $errs += $m->{rerr($_)} - $m0->{rerr($_)} for @KINDS;
    is($errs, 3, 'one redis error per 503');
    is($m->{+ACC}, $m0->{+ACC}, 'accepted_total unchanged');
    $redis->restart;
}

$ngx->finish;
done_testing;
