#!/usr/bin/perl
# The per-bus and per-source series and the append-latency histogram of
# eventbridge_status, read by Prometheus's parser: exact values after a
# known mix of accepted, deduplicated and rejected requests on two buses,
# three sources and a PutEvents endpoint, counted by two workers into one
# zone; the histogram's buckets, _count and _sum; failed appends under
# outcome="error"; and what reloads do to the series.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep);
use EBTest qw(wait_for);

my $TIMEOUT = 3;        # eventbridge_redis_timeout: no append takes longer

my $redis = EBTest::Redis->start;

# $o{b}: with /b (src.b); $o{d}: with /d (src.d); $o{many}: N more sources
sub conf {
    my (%o) = @_;
    my $extra = join '', map { "        location /x$_ { eventbridge_source x.$_ bus=alpha; }\n" }
                         1 .. ($o{many} // 0);
    return <<"EOF";
    eventbridge_redis %%REDIS%%;
    eventbridge_redis_timeout ${TIMEOUT}s;
    log_format eb_pid '\$pid \$status \$uri';
    server {
        # reuseport: the kernel spreads connections over both workers
        listen 127.0.0.1:%%PORT%% reuseport;
        access_log %%DIR%%/logs/pid.log eb_pid;
        client_max_body_size 1k;

        location /a { eventbridge_source src.a bus=alpha; }
        location /a2 {
            eventbridge_source src.a bus=alpha;
            eventbridge_token s3cret;
        }
@{[ $o{b} ? '        location /b {
            eventbridge_source src.b bus=beta;
            eventbridge_max_json_depth 2;
        }' : '' ]}
        location /c {
            eventbridge_source src.c bus=beta;
            eventbridge_dedupe header:Idempotency-Key;
        }
@{[ $o{d} ? '        location /d { eventbridge_source src.d bus=alpha; }' : '' ]}
        location /pe { eventbridge_put_events bus=beta; }
$extra
        location /status { eventbridge_status; }
    }
EOF
}

my $ngx = EBTest::Nginx->new(redis => $redis, workers => 2,
                             http => conf(b => 1));
$ngx->start;

# 'name{a="x",b="y"}', labels sorted: EBTest::prometheus's keys
sub key {
    my ($name, %l) = @_;
    return $name . '{' . join(',', map { qq($_="$l{$_}") } sort keys %l) . '}';
}

# the endpoints: the labels of their bus's series and of their source's
my %EP = (
    '/a'  => { bus => 'alpha', endpoint => 'source', source => 'src.a' },
    '/a2' => { bus => 'alpha', endpoint => 'source', source => 'src.a' },
    '/b'  => { bus => 'beta',  endpoint => 'source', source => 'src.b' },
    '/c'  => { bus => 'beta',  endpoint => 'source', source => 'src.c' },
    '/d'  => { bus => 'alpha', endpoint => 'source', source => 'src.d' },
    '/pe' => { bus => 'beta',  endpoint => 'put_events' },
);

# The samples one event or rejection on an endpoint moves: the total, its
# bus's and its source's. $what: accepted, deduplicated or a reason.
sub moved {
    my ($path, $what) = @_;
    my $e = $EP{ $path =~ s/\?.*//r };
    my ($c, @r) = $what =~ /^(accepted|deduplicated)$/
                ? ($what) : ('rejected', reason => $what);
    return (@r ? key('eventbridge_events_rejected_total', @r)
               : "eventbridge_events_${c}_total",
            key("eventbridge_bus_events_${c}_total",
                bus => $e->{bus}, endpoint => $e->{endpoint}, @r),
            $e->{source} ? key("eventbridge_source_events_${c}_total",
                               bus => $e->{bus}, source => $e->{source}, @r)
                         : ());
}

my %want;               # sample => expected value (absent: 0)
my %appends = (ok => 0, error => 0);

# post(WHAT, PATH, STATUS, { accepted => N, deduplicated => N,
#      rejected => REASON, append => ok|error }, REQUEST...)
sub post {
    my ($what, $path, $status, $fx, %req) = @_;
    my $r = $ngx->request(method => 'POST', path => $path, %req);
    is($r->{status}, $status, "$what: $status") or diag $r->{body};
    for my $k (qw(accepted deduplicated)) {
        $want{$_} += $fx->{$k} for $fx->{$k} ? moved($path, $k) : ();
    }
    $want{$_}++ for $fx->{rejected} ? moved($path, $fx->{rejected}) : ();
    $appends{$fx->{append}}++ if $fx->{append};
    return $r;
}

sub json { (headers => ['Content-Type' => 'application/json'], body => $_[0]) }

sub ce {
    my ($id, %o) = @_;
    return qq({"specversion":"1.0","id":"$id","source":"/t","type":"t.t"})
        unless $o{invalid};
    return qq({"specversion":"1.0","id":"$id","source":"/t"});
}

sub batch {
    (headers => ['Content-Type' => 'application/cloudevents-batch+json'],
     body => '[' . join(',', @_) . ']')
}

# the families these tests count, as keys of the page
my $COUNTED = qr/^eventbridge_(events|bus_events|source_events)_
                 (accepted|deduplicated|rejected)_total/x;

# every counted sample of the page equals %want (absent: 0)
sub counted_as_wanted {
    my ($m, $what) = @_;
    my @diff = map { "$_: page " . ($m->{$_} // 'absent') . ', want '
                     . ($want{$_} // 0) }
               grep { ($m->{$_} // -1) != ($want{$_} // 0) }
               (grep({ /$COUNTED/ } keys %$m), keys %want);
    my %seen;
    @diff = grep { !$seen{$_}++ } sort @diff;
    is(scalar @diff, 0, $what) or diag join "\n", @diff;
}

# The histogram of one outcome: [ [le, cumulative count], ... ], sum, count.
sub histogram {
    my ($m, $outcome) = @_;
    my $n = 'eventbridge_append_duration_seconds';
    my @b;
    for my $k (keys %$m) {
        next unless $k =~ /^${n}_bucket\{le="([^"]+)",outcome="$outcome"\}$/;
        push @b, [ $1, $m->{$k} ];
    }
    @b = sort { ($a->[0] eq '+Inf' ? 9**9**9 : $a->[0])
                <=> ($b->[0] eq '+Inf' ? 9**9**9 : $b->[0]) } @b;
    return (\@b, $m->{qq(${n}_sum{outcome="$outcome"})},
            $m->{qq(${n}_count{outcome="$outcome"})});
}

# buckets cumulative, +Inf = _count = $count, and a _sum that the
# observations' buckets allow (in seconds: each is above its bucket's
# lower bound and at most its upper bound; rounded to 1 µs)
sub histogram_ok {
    my ($m, $outcome, $count) = @_;
    my ($b, $sum, $n) = histogram($m, $outcome);
    subtest "histogram, outcome=\"$outcome\"" => sub {
        is_deeply([map { $_->[0] } @$b],
                  [qw(0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25
                      0.5 1 2.5 5 +Inf)], 'the buckets');
        my @down = grep { $b->[$_][1] < $b->[$_ - 1][1] } 1 .. $#$b;
        is(scalar @down, 0, 'cumulative: no bucket below the one before');
        is($b->[-1][1], $n, 'le="+Inf" = _count');
        is($n, $count, "_count = $count appends");
        my ($lo, $hi, $prev) = (0, 0, 0);
        for my $i (0 .. $#$b) {
            my $in = $b->[$i][1] - ($i ? $b->[$i - 1][1] : 0);
            $lo += $in * $prev;
            $hi += $in * ($b->[$i][0] eq '+Inf' ? $TIMEOUT : $b->[$i][0]);
            $prev = $b->[$i][0];
        }
        if ($count) {
            # a 503 may wait for the whole timeout, and a bit
            my $max = $TIMEOUT + ($outcome eq 'ok' ? 0 : 1);
            cmp_ok($sum, '>', 0, '_sum > 0');
            cmp_ok($sum, '<', $count * $max, "_sum < _count * $max s");
        } else {
            is($sum, 0, '_sum 0');
        }
        cmp_ok($sum, '>=', $lo - 1e-6 * $count, "_sum >= what the buckets' "
               . "lower bounds allow ($lo)");
        cmp_ok($sum, '<=', $hi + 1e-6 * $count, "_sum <= what their upper "
               . "bounds allow ($hi)");
    };
}

# --- a known mix on two buses, three sources, PutEvents ------------------------

{
    my $m0 = $ngx->metrics;
    counted_as_wanted($m0, 'at start: every series present, at 0');
    ok(!grep({ /source="src\.d"/ } keys %$m0), 'no series of an unknown source');

    for my $i (1 .. 12) {
        post("src.a #$i", '/a', 200, { accepted => 1, append => 'ok' },
             json(qq({"i":$i})));
    }
    post("src.a invalid JSON #$_", '/a', 400, { rejected => 'invalid_json' },
         json('{"a":')) for 1 .. 2;
    my $r = $ngx->request(method => 'GET', path => '/a');
    is($r->{status}, 405, 'src.a GET: 405');
    $want{$_}++ for moved('/a', 'method');

    post("src.a (second location) no token #$_", '/a2', 401,
         { rejected => 'token' }, json('{}')) for 1 .. 3;
    post("src.a (second location) token #$_", '/a2?token=s3cret', 200,
         { accepted => 1, append => 'ok' }, json('{}')) for 1 .. 2;

    post("src.b #$_", '/b', 200, { accepted => 1, append => 'ok' },
         json('{"b":1}')) for 1 .. 5;
    post("src.b too deep #$_", '/b', 400, { rejected => 'json_too_deep' },
         json('{"a":{"b":{"c":1}}}')) for 1 .. 2;
    post('src.b too large', '/b', 413, { rejected => 'body_too_large' },
         headers => ['Content-Type' => 'text/plain'], body => 'x' x 2048);

    post('src.c key k1', '/c', 200, { accepted => 1, append => 'ok' },
         headers => ['Idempotency-Key' => 'k1'], body => 'one');
    post("src.c key k1 again #$_", '/c', 200,
         { deduplicated => 1, append => 'ok' },
         headers => ['Idempotency-Key' => 'k1'], body => 'one') for 1 .. 2;
    post('src.c key k2', '/c', 200, { accepted => 1, append => 'ok' },
         headers => ['Idempotency-Key' => 'k2'], body => 'two');

    post('PutEvents batch of 3', '/pe', 200, { accepted => 3, append => 'ok' },
         batch(ce('p1'), ce('p2'), ce('p3')));
    $r = post('PutEvents batch, one entry invalid', '/pe', 200,
              { accepted => 2, append => 'ok' },
              batch(ce('p4'), ce('p5', invalid => 1), ce('p6')));
    is($r->{json} && $r->{json}{failedEntryCount}, 1, '... one entry failed');
    post('PutEvents invalid event', '/pe', 400, { rejected => 'invalid_event' },
         headers => ['Content-Type' => 'application/cloudevents+json'],
         body => ce('p7', invalid => 1));
    post('PutEvents unsupported media type', '/pe', 415,
         { rejected => 'invalid_event' },
         headers => ['Content-Type' => 'application/cloudevents+avro'],
         body => "\x00\x01");

    my $m = $ngx->metrics;
    counted_as_wanted($m, 'totals, per bus and per source: exact');
    ok(!grep({ m{source="/t"} } keys %$m),
       "PutEvents: the events' own sources are no label");
    is($m->{key('eventbridge_source_events_accepted_total',
                bus => 'alpha', source => 'src.a')}, 14,
       'src.a: both of its locations count into one series');
    is($m->{eventbridge_events_accepted_total},
       $redis->xlen('eb:{alpha}:events') + $redis->xlen('eb:{beta}:events'),
       'accepted_total = the events in the streams');
    histogram_ok($m, 'ok', $appends{ok});
    histogram_ok($m, 'error', 0);

    # one zone for both workers: the same page from either, and both
    # counted some of the events
    my %pages;
    for (1 .. 10) {
        my $p = $ngx->metrics;
        $pages{ join ',', map { "$_=$p->{$_}" } sort keys %$p }++;
    }
    is(scalar keys %pages, 1, 'the same page from whichever worker answers');
    my %pids;
    sleep 0.2;
    if (open my $fh, '<', $ngx->dir . '/logs/pid.log') {
        while (<$fh>) { $pids{$1}++ if m{^(\d+) 200 /} }
    }
    my @w = $ngx->worker_pids;
    is(scalar(grep { $pids{$_} } @w), 2, 'both workers answered some 200s')
        or diag('by pid: ' . join ', ', map { "$_: $pids{$_}" } keys %pids);
}

# --- failed appends: outcome="error" -----------------------------------------

{
    $redis->stop;
    post("src.a, Redis down #$_", '/a', 503,
         { rejected => 'unavailable', append => 'error' }, json('{}'))
        for 1 .. 2;
    post('PutEvents, Redis down', '/pe', 503,
         { rejected => 'unavailable', append => 'error' },
         batch(ce('q1')));

    my $m = $ngx->metrics;
    counted_as_wanted($m, 'Redis down: unavailable counted per bus and source');
    histogram_ok($m, 'error', $appends{error});
    histogram_ok($m, 'ok', $appends{ok});

    $redis->restart;
    ok(wait_for(sub {
           $ngx->request(method => 'POST', path => '/c',
                         headers => ['Idempotency-Key' => 'k1'],
                         body => 'one')->{status} == 200 }, 15),
       'Redis back: appends again');
}

# --- reloads -----------------------------------------------------------------

sub reload_to {
    my (%o) = @_;
    my %old = map { $_ => 1 } $ngx->worker_pids;
    $ngx->write_conf(conf(%o));
    $ngx->reload;
    return wait_for(sub {
        my @n = $ngx->worker_pids;
        @n == 2 && !grep { $old{$_} } @n }, 15);
}

# the samples whose keys match $re (and not $not)
sub series_of {
    my ($m, $re, $not) = @_;
    return { map { $_ => $m->{$_} }
             grep { /$re/ && !($not && /$not/) } keys %$m };
}

my $ALPHA = qr/source="src\.a"|^eventbridge_bus_events_\w+\{bus="alpha"/;

my $GLOBAL = qr/^eventbridge_(events_|append_duration)/;

{
    my $m0 = $ngx->metrics;

    ok(reload_to(d => 1), 'reload: without src.b, with src.d');
    my $m1 = $ngx->metrics;
    is_deeply(series_of($m1, $ALPHA), series_of($m0, $ALPHA),
              'src.a and bus alpha keep their counts');
    is_deeply(series_of($m1, qr/bus="beta"/),
              series_of($m0, qr/bus="beta"/, qr/source="src\.b"/),
              'bus beta and src.c keep theirs; src.b is gone');
    is_deeply(series_of($m1, $GLOBAL), series_of($m0, $GLOBAL),
              'totals and the histogram go on');
    my $d = series_of($m1, qr/source="src\.d"/);
    is(scalar(keys %$d), 2 + 12, 'src.d: its series');
    is(scalar(grep { $_ } values %$d), 0, 'src.d: all at 0');

    is($ngx->request(method => 'POST', path => '/d', body => 'x')->{status},
       200, 'src.d: 200');
    my $m2 = $ngx->metrics;
    is($m2->{key('eventbridge_source_events_accepted_total',
                 bus => 'alpha', source => 'src.d')}, 1, 'src.d: 1 accepted');
    is($m2->{key('eventbridge_bus_events_accepted_total',
                 bus => 'alpha', endpoint => 'source')},
       $m1->{key('eventbridge_bus_events_accepted_total',
                 bus => 'alpha', endpoint => 'source')} + 1,
       'bus alpha: one more');

    ok(reload_to(b => 1), 'reload: src.b back, src.d gone');
    my $m3 = $ngx->metrics;
    my $b = series_of($m3, qr/source="src\.b"/);
    is(scalar(keys %$b), 2 + 12, 'src.b: its series again');
    is(scalar(grep { $_ } values %$b), 0,
       'src.b: back from zero (a series the running configuration lacks '
       . 'starts anew)');
    ok(!grep({ /src\.d/ } keys %$m3), 'src.d: gone');
    is_deeply(series_of($m3, qr/src\.a|$GLOBAL/),
              series_of($m2, qr/src\.a|$GLOBAL/),
              'src.a, totals and histogram: unchanged');

    # 300 more sources need a larger zone: nginx makes a new one (it
    # reuses a zone only at the same size), so every counter restarts
    ok(reload_to(b => 1, many => 300), 'reload: 300 sources more');
    my $m4 = $ngx->metrics;
    is(scalar(grep { /^eventbridge_source_events_accepted_total/ } keys %$m4),
       3 + 300, 'a series for each of the 303 sources');
    is($m4->{eventbridge_events_accepted_total}, 0,
       'a zone of another size: counters restart at 0');
    is($ngx->request(method => 'POST', path => '/x300', body => 'x')->{status},
       200, 'the 300th: 200');
    $m4 = $ngx->metrics;
    is($m4->{key('eventbridge_source_events_accepted_total',
                 bus => 'alpha', source => 'x.300')}, 1, '... counted');
    histogram_ok($m4, 'ok', 1);
}

$ngx->finish;
done_testing;
