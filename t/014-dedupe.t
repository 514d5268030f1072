#!/usr/bin/perl
# Idempotent ingest (`eventbridge_dedupe`): a repeat of an idempotency key
# within the window is answered 200 with the original event id (the same
# body as the first answer) and appends nothing: no event, no fan-out.
# The check and the appends are one EVAL. Covered: header keys, the
# window (1 s), JSONPath keys in the body, requests without a key
# (processed normally, or 400 with missing=reject), long keys (hashed),
# 100 identical requests at once on two workers (one event, one entry
# per target, one id), PutEvents by (source, id) within a batch and across
# requests, the metrics, nginx -t errors, no eventbridge_config; then on a
# 3-primary Redis Cluster with eventbridge_redis_wait: key routing, a
# repeat, the 100 at once, PutEvents, and pairs of repeats under load
# while the bus's slot migrates (ASK, TRYAGAIN) and while its primary is
# killed (resends): one event per key, one id per pair.
use strict;
use warnings;
use Test::More;
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);
use EBTest::RedisCluster;
use EBTest::Load;

my $JSON = JSON::PP->new->utf8->canonical;

# --- nginx -t ---------------------------------------------------------------

sub conf_error {
    my ($what, $re, $loc) = @_;
    my $ngx = EBTest::Nginx->new(http => <<"EOF");
    eventbridge_redis 127.0.0.1:1;
    server {
        listen 127.0.0.1:%%PORT%%;
        $loc
    }
EOF
    my ($rc, $out) = $ngx->test_conf;
    isnt($rc, 0, "nginx -t fails: $what");
    like($out, $re, "nginx -t says why: $what") or diag $out;
}

conf_error('unknown key form',
           qr/"eventbridge_dedupe" directive: invalid key "query:id": expected "header:NAME", "body:JSONPATH" or "cloudevents" in .*nginx\.conf:\d+/,
           'location /s { eventbridge_source s bus=b; eventbridge_dedupe query:id; }');
conf_error('bad header name',
           qr/"eventbridge_dedupe" directive: invalid header name "Idem Key"/,
           'location /s { eventbridge_source s bus=b; eventbridge_dedupe "header:Idem Key"; }');
conf_error('bad JSONPath',
           qr/"eventbridge_dedupe" directive: "body:\$\.a\[": invalid JSONPath at offset \d+/,
           'location /s { eventbridge_source s bus=b; eventbridge_dedupe body:$.a[; }');
conf_error('JSONPath that may select several values',
           qr/"eventbridge_dedupe" directive: "body:\$\.\.id" may select several values/,
           'location /s { eventbridge_source s bus=b; eventbridge_dedupe body:$..id; }');
conf_error('bad window',
           qr/"eventbridge_dedupe" directive: invalid window "soon"/,
           'location /s { eventbridge_source s bus=b; eventbridge_dedupe header:K window=soon; }');
conf_error('window over 30 days',
           qr/"eventbridge_dedupe" directive: invalid window "31d": use a time from 1ms to 30d/,
           'location /s { eventbridge_source s bus=b; eventbridge_dedupe header:K window=31d; }');
conf_error('unknown parameter',
           qr/"eventbridge_dedupe" directive: invalid parameter "missing=drop"/,
           'location /s { eventbridge_source s bus=b; eventbridge_dedupe header:K missing=drop; }');
conf_error('twice in a location', qr/"eventbridge_dedupe" directive is duplicate/,
           'location /s { eventbridge_source s bus=b; eventbridge_dedupe header:K; eventbridge_dedupe header:L; }');
conf_error('without an endpoint',
           qr/"eventbridge_dedupe" directive: needs "eventbridge_source" or "eventbridge_put_events" in the same location in .*nginx\.conf:\d+/,
           'location /s { eventbridge_dedupe header:K; }');
conf_error('cloudevents on a source',
           qr/"eventbridge_dedupe" directive: "cloudevents" applies to "eventbridge_put_events" only/,
           'location /s { eventbridge_source s bus=b; eventbridge_dedupe cloudevents; }');
conf_error('a header on PutEvents',
           qr/"eventbridge_dedupe" directive: a PutEvents endpoint dedupes by "cloudevents" \(source, id\) only/,
           'location /s { eventbridge_put_events bus=b; eventbridge_dedupe header:K; }');
conf_error('missing=reject with cloudevents',
           qr/"missing=reject" does not apply to "cloudevents"/,
           'location /s { eventbridge_put_events bus=b; eventbridge_dedupe cloudevents missing=reject; }');
conf_error('in a server block', qr/"eventbridge_dedupe" directive is not allowed here/,
           'eventbridge_dedupe header:K;');

# --- helpers ----------------------------------------------------------------

sub post {
    my ($ngx, $path, %o) = @_;
    return $ngx->request(method => 'POST', path => $path,
                         headers => [ 'Content-Type' => $o{ctype} // 'application/json',
                                      @{ $o{headers} // [] } ],
                         body => $o{body} // '{"n":1}', timeout => 10);
}

# $n identical requests on $n connections opened first, written at once;
# the answers: [ { status, body, id } ]
sub simultaneous {
    my ($port, $path, $n, $body, @hdr) = @_;
    my @socks = map {
        IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                            Proto => 'tcp', Timeout => 5)
            or die "connect: $@"
    } 1 .. $n;
    my $req = "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\n"
        . join('', map { "$_\r\n" } @hdr)
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    local $SIG{PIPE} = 'IGNORE';
    syswrite($_, $req) for @socks;
    my %idx = map { (fileno($socks[$_]) => $_) } 0 .. $#socks;
    my @buf = ('') x $n;
    my $sel = IO::Select->new(@socks);
    my $end = time + 20;
    while ($sel->count && time < $end) {
        for my $s ($sel->can_read(0.5)) {
            my $got = sysread($s, my $chunk, 65536);
            if ($got) { $buf[ $idx{ fileno $s } ] .= $chunk }
            else { $sel->remove($s); close $s }
        }
    }
    return [ map {
        my ($head, $b) = split /\r\n\r\n/, $_, 2;
        my ($st) = ($head // '') =~ m{^HTTP/1\.1 (\d+)};
        my $j = EBTest::json_decode($b // '') // {};
        { status => $st // 0, body => $b // '', id => $j->{eventId} }
    } @buf ];
}

sub check_simultaneous {
    my ($ans, $what, $events, $targets) = @_;
    my %st; $st{ $_->{status} }++ for @$ans;
    my %ids; $ids{ $_->{id} // 'none' }++ for @$ans;
    my %bodies; $bodies{ $_->{body} }++ for @$ans;
    is($st{200} // 0, scalar @$ans, "$what: all answered 200")
        or diag explain \%st;
    is(scalar keys %ids, 1, "$what: all with the same id") or diag explain \%ids;
    is(scalar keys %bodies, 1, "$what: the same body");
    is($events->(), 1, "$what: exactly one event");
    is($_->[1]->(), 1, "$what: exactly one entry in target $_->[0]")
        for @$targets;
    return (keys %ids)[0];
}

my $cfg_rules = sub {
    my (@buses) = @_;
    return $JSON->encode({
        targets => { a => { type => 'http', url => 'https://a.example.com/' },
                     b => { type => 'http', url => 'https://b.example.com/' } },
        buses => { map { $_ => { rules => {
            all => { pattern => { source => [ 's.src', '/t', '/other' ] },
                     targets => [ { target => 'a' }, { target => 'b' } ] },
            none => { pattern => { source => [ 'nobody' ] },
                      targets => [ { target => 'a' } ] } } } } @buses },
    });
};

# --- one Redis ------------------------------------------------------------------

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, workers => 2, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /h {
            eventbridge_source s.src bus=h;
            eventbridge_dedupe header:Idempotency-Key;
        }
        location /gh {
            eventbridge_dedupe header:X-GitHub-Delivery window=1s;
            eventbridge_source s.src bus=gh;
        }
        location /j {
            eventbridge_source s.src bus=j;
            eventbridge_dedupe body:$.data.id;
        }
        location /req {
            eventbridge_source s.src bus=req;
            eventbridge_dedupe header:webhook-id missing=reject;
        }
        location /conc {
            eventbridge_source s.src bus=conc;
            eventbridge_dedupe header:Idempotency-Key;
        }
        location /pe {
            eventbridge_put_events bus=pe;
            eventbridge_dedupe cloudevents;
        }
        location /plain { eventbridge_source s.src bus=plain; }
        location /status { eventbridge_status; }
    }
EOF
write_file($ngx->dir . '/buses.json',
           $cfg_rules->(qw(h gh j req conc pe plain)));
$ngx->start;

sub elen { my $n = $redis->xlen("eb:{$_[0]}:events"); ref $n ? -1 : $n }
sub tlen { my $n = $redis->xlen("eb:{$_[0]}:target:$_[1]"); ref $n ? -1 : $n }

my $m0 = $ngx->metrics;
use constant DEDUP => 'eventbridge_events_deduplicated_total';
use constant ACC => 'eventbridge_events_accepted_total';

# same key twice; another key
{
    my $r1 = post($ngx, '/h', headers => [ 'Idempotency-Key' => 'k1' ]);
    my $r2 = post($ngx, '/h', headers => [ 'Idempotency-Key' => 'k1' ],
                  body => '{"n":2}');
    is($r1->{status}, 200, 'header key: first 200');
    is($r2->{status}, 200, 'header key: repeat 200');
    ok($r1->{json}{eventId}, 'header key: an id');
    is($r2->{body}, $r1->{body}, 'header key: the repeat gets the same body (the original id)');
    is(elen('h'), 1, 'header key: one event');
    is(tlen('h', 'a'), 1, 'header key: one entry in target a');
    is(tlen('h', 'b'), 1, 'header key: one entry in target b');
    my $k = 'eb:{h}:dedupe:src:s.src:k1';
    is($redis->cmd('GET', $k), $r1->{json}{eventId}, "the key $k holds the id");
    my $ttl = $redis->cmd('PTTL', $k);
    ok($ttl > 23.9 * 3600 * 1000 && $ttl <= 24 * 3600 * 1000,
       "default window 24 h (PTTL $ttl)");
    my $mem = $redis->cmd('MEMORY', 'USAGE', $k);
    diag("MEMORY USAGE $k: $mem bytes");
    my $hk = 'eb:{h}:dedupe:src:s.src:' . ('x' x 128);
    post($ngx, '/h', headers => [ 'Idempotency-Key' => 'x' x 128 ]);
    diag("MEMORY USAGE of a key with a 128-byte value: "
         . $redis->cmd('MEMORY', 'USAGE', $hk) . ' bytes');

    my $r3 = post($ngx, '/h', headers => [ 'Idempotency-Key' => 'k2' ]);
    is($r3->{status}, 200, 'another key: 200');
    isnt($r3->{json}{eventId}, $r1->{json}{eventId}, 'another key: another id');
    is(elen('h'), 3, 'another key: a new event');
    is(tlen('h', 'a'), 3, 'another key: and its fan-out');

    # the key is the header's value byte for byte; the header name in any case
    my $r4 = post($ngx, '/h', headers => [ 'idempotency-key' => 'k2' ]);
    is($r4->{json}{eventId}, $r3->{json}{eventId}, 'header name in any case');

    # without the header: processed as usual, every time
    my $n0 = elen('h');
    my $a = post($ngx, '/h');
    my $b = post($ngx, '/h');
    is($a->{status} . $b->{status}, '200200', 'no key: 200');
    isnt($a->{json}{eventId}, $b->{json}{eventId}, 'no key: two ids');
    is(elen('h'), $n0 + 2, 'no key: two events');
    my $e = post($ngx, '/h', headers => [ 'Idempotency-Key' => '' ]);
    is(elen('h'), $n0 + 3, 'an empty key is no key');

    # long values are hashed: the key stays short, repeats still match
    my $long = 'L' x 300;
    my $l1 = post($ngx, '/h', headers => [ 'Idempotency-Key' => $long ]);
    my $l2 = post($ngx, '/h', headers => [ 'Idempotency-Key' => $long ]);
    is($l2->{json}{eventId}, $l1->{json}{eventId}, 'long key: repeat matched');
    require Digest::SHA;
    my $hashed = 'eb:{h}:dedupe:src:s.src:#' . Digest::SHA::sha256_hex($long);
    is($redis->cmd('GET', $hashed), $l1->{json}{eventId},
       'long key: stored as # and its SHA-256');
    diag("MEMORY USAGE of a hashed key: "
         . $redis->cmd('MEMORY', 'USAGE', $hashed) . ' bytes');
    my $hash1 = post($ngx, '/h', headers => [ 'Idempotency-Key' => '#abc' ]);
    is($redis->cmd('GET', 'eb:{h}:dedupe:src:s.src:#'
                          . Digest::SHA::sha256_hex('#abc')),
       $hash1->{json}{eventId}, 'a value starting with # is hashed too');
}

# the window
{
    my $r1 = post($ngx, '/gh', headers => [ 'X-GitHub-Delivery' => 'd-1' ]);
    my $r2 = post($ngx, '/gh', headers => [ 'X-GitHub-Delivery' => 'd-1' ]);
    is($r2->{json}{eventId}, $r1->{json}{eventId}, 'window 1s: repeat inside');
    is(elen('gh'), 1, 'window 1s: one event');
    sleep 1.2;
    my $r3 = post($ngx, '/gh', headers => [ 'X-GitHub-Delivery' => 'd-1' ]);
    is($r3->{status}, 200, 'window 1s: after it 200');
    isnt($r3->{json}{eventId}, $r1->{json}{eventId}, 'window 1s: after it a new id');
    is(elen('gh'), 2, 'window 1s: after it a new event');
    is(tlen('gh', 'a'), 2, 'window 1s: and its fan-out');
}

# JSONPath in the body
{
    my $r1 = post($ngx, '/j', body => '{"data":{"id":"x1","v":1}}');
    my $r2 = post($ngx, '/j', body => '{ "data" : { "v" : 2, "id" : "x1" } }');
    is($r2->{json}{eventId}, $r1->{json}{eventId}, 'JSONPath key: repeat');
    is(elen('j'), 1, 'JSONPath key: one event');
    my $r3 = post($ngx, '/j', body => '{"data":{"id":"x2"}}');
    isnt($r3->{json}{eventId}, $r1->{json}{eventId}, 'JSONPath key: another value');
    my $n1 = post($ngx, '/j', body => '{"data":{"id":42}}');
    my $n2 = post($ngx, '/j', body => '{"data":{"id":42}}');
    is($n2->{json}{eventId}, $n1->{json}{eventId}, 'JSONPath key: a number');
    ok(defined $redis->cmd('GET', 'eb:{j}:dedupe:src:s.src:42'),
       'JSONPath key: the number as text in the key');
    my $n0 = elen('j');
    post($ngx, "/j", body => $_) for '{"data":{}}', '{"data":{}}',
        '{"data":{"id":null}}', '[1,2]';
    post($ngx, "/j", body => 'not json', ctype => 'text/plain');
    is(elen('j'), $n0 + 5, 'JSONPath key: absent, null or not JSON: processed as usual');
}

# missing=reject
{
    my $r = post($ngx, '/req');
    is($r->{status}, 400, 'missing=reject: 400');
    is($r->{json}{errorCode}, 'MissingIdempotencyKey', 'missing=reject: errorCode');
    like($r->{json}{errorMessage}, qr/webhook-id/, 'missing=reject: names the header');
    is(elen('req'), 0, 'missing=reject: nothing appended');
    my $ok = post($ngx, '/req', headers => [ 'webhook-id' => 'msg_1' ]);
    is($ok->{status}, 200, 'missing=reject: with the key 200');
}

# 100 identical requests at once, two workers
{
    my $ans = simultaneous($ngx->port, '/conc', 100, '{"n":1}',
                           'Idempotency-Key: same');
    check_simultaneous($ans, '100 at once', sub { elen('conc') },
                       [ [ a => sub { tlen('conc', 'a') } ],
                         [ b => sub { tlen('conc', 'b') } ] ]);
}

# PutEvents: (source, id)
{
    my $ev = sub {
        my ($id, $src) = @_;
        $src //= '/t';
        qq({"specversion":"1.0","id":"$id","source":"$src","type":"t.t"});
    };
    my $batch = '[' . join(',', $ev->('e1'), $ev->('e1'), $ev->('e2'),
                           $ev->('e1', '/other')) . ']';
    my $r = post($ngx, '/pe', ctype => 'application/cloudevents-batch+json',
                 body => $batch);
    is($r->{status}, 200, 'PutEvents batch with a repeat: 200');
    is($r->{json}{failedEntryCount}, 0, 'PutEvents: no failed entry');
    is_deeply([ map { $_->{eventId} } @{ $r->{json}{entries} } ],
              [qw(e1 e1 e2 e1)], 'PutEvents: the repeat reported with its id');
    is(elen('pe'), 3, 'PutEvents: the repeat in the batch not appended; '
       . 'the same id from another source is another event');
    is(tlen('pe', 'a'), 3, 'PutEvents: fan-out once per event');
    is(tlen('pe', 'b'), 3, 'PutEvents: in every target');

    my $s = post($ngx, '/pe', ctype => 'application/cloudevents+json',
                 body => $ev->('e2'));
    is($s->{status}, 200, 'PutEvents: a repeat in a later request: 200');
    is($s->{json}{entries}[0]{eventId}, 'e2', 'PutEvents: with its id');
    my $bin = $ngx->request(method => 'POST', path => '/pe',
                            headers => [ 'ce-specversion' => '1.0',
                                         'ce-id' => 'e1', 'ce-source' => '/t',
                                         'ce-type' => 't.t',
                                         'Content-Type' => 'application/json' ],
                            body => '{"x":1}');
    is($bin->{status}, 200, 'PutEvents: binary mode repeat: 200');
    is(elen('pe'), 3, 'PutEvents: repeats across requests not appended');
    ok(defined $redis->cmd('GET', 'eb:{pe}:dedupe:ce:2:/te1'),
       'PutEvents: key eb:{pe}:dedupe:ce:LEN:SOURCEID');
    diag("MEMORY USAGE eb:{pe}:dedupe:ce:2:/te1: "
         . $redis->cmd('MEMORY', 'USAGE', 'eb:{pe}:dedupe:ce:2:/te1')
         . ' bytes');
}

# metrics: repeats counted apart from accepted events
{
    my $m = $ngx->metrics;
    my $dedup = $m->{+DEDUP} - ($m0->{+DEDUP} // 0);
    # /h: 1 + 1 (k2) + 1 (long); /gh 1; /j 2; /conc 99; /pe 1 + 2
    is($dedup, 108, 'eventbridge_events_deduplicated_total counts the repeats');
    is($m->{'eventbridge_events_rejected_total{reason="missing_key"}'}, 1,
       'rejected_total{reason="missing_key"}');
    my $acc = $m->{+ACC} - $m0->{+ACC};
    my $stored = 0;
    $stored += elen($_) for qw(h gh j req conc pe);
    is($acc, $stored, 'accepted_total counts appended events only');
}

$ngx->finish;

# without eventbridge_config: no fan-out, the script appends the event only
{
    my $n = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /n { eventbridge_source s.src bus=norules; eventbridge_dedupe header:K; }
    }
EOF
    $n->start;
    my $r1 = post($n, '/n', headers => [ K => 'x' ]);
    my $r2 = post($n, '/n', headers => [ K => 'x' ]);
    is($r2->{body}, $r1->{body}, 'no rules: repeat answered with the original id');
    is(elen('norules'), 1, 'no rules: one event');
    is($redis->xrange('eb:{norules}:events')->[0][1]{rules}, '',
       'no rules: an empty rules field, as without dedupe');
    $n->finish;
}

# --- a Redis Cluster: 3 primaries, 2 replicas each, WAIT 1 ----------------------

my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 2,
                                    node_timeout => 1000);
my @bus = $c->bus_names(3, 'd');
my %slot = map { $_ => $c->slot_of("eb:{$_}:events") } @bus;
note("buses @bus on slots @slot{@bus}");

my $cn = EBTest::Nginx->new(workers => 2, http => <<"EOF");
    eventbridge_redis cluster ${\ join ' ', ($c->seeds)[0, 1] };
    eventbridge_redis_timeout 3s;
    eventbridge_redis_wait 1 1s;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /$bus[0] { eventbridge_source s.src bus=$bus[0]; eventbridge_dedupe header:Idempotency-Key; }
        location /$bus[1] { eventbridge_source s.src bus=$bus[1]; eventbridge_dedupe header:Idempotency-Key; }
        location /pe { eventbridge_put_events bus=$bus[2]; eventbridge_dedupe cloudevents; }
        location /mig { eventbridge_source s.src bus=$bus[0]; eventbridge_dedupe body:\$.k; }
        location /kill { eventbridge_source s.src bus=$bus[1]; eventbridge_dedupe body:\$.k; }
        location /status { eventbridge_status; }
    }
EOF
write_file($cn->dir . '/buses.json', $cfg_rules->(@bus));
$cn->start;

# The requests of $res came in pairs with one key ("k": "m<i/2>"): both
# 2xx of a pair carry one id, no key has two events, every acknowledged id
# is stored with its fan-out.
sub check_pairs {
    my ($b, $res, $what) = @_;
    my %pair;
    for my $rq (@{ $res->{requests} }) {
        my ($i, $t, $st, $ms, $ids) = @$rq;
        next unless $st == 200 && $ids && @$ids;
        push @{ $pair{ int($i / 2) } }, $ids->[0];
    }
    my $split = grep { @$_ == 2 && $_->[0] ne $_->[1] } values %pair;
    is($split, 0, "$what: both requests of a pair got the same id");

    my (%by_id, %by_key);
    for my $e (@{ $c->xrange("eb:{$b}:events") }) {
        my $j = EBTest::json_decode($e->[1]{event} // '') // {};
        my $k = ref $j->{data}{body} eq 'HASH' ? $j->{data}{body}{k} : undef;
        next unless defined $k && $k =~ /^m\d+$/;
        $by_id{ $j->{id} }++;
        $by_key{$k}++;
    }
    is(scalar(grep { $_ > 1 } values %by_key), 0,
       "$what: at most one event per key");
    is(scalar(grep { !$by_id{ $_->[0] } } values %pair), 0,
       "$what: every acknowledged id is stored");
    my $fo = EBTest::event_ids($c->xrange("eb:{$b}:target:a"));
    is(scalar(grep { $by_id{$_} && !$fo->{$_} } keys %by_id), 0,
       "$what: with its fan-out");
}

{
    my %owner;
    for my $b (@bus[0, 1]) {
        my $r1;
        wait_for(sub {
            $r1 = post($cn, "/$b", headers => [ 'Idempotency-Key' => "c-$b" ]);
            $r1->{status} == 200 }, 10);
        my $r2 = post($cn, "/$b", headers => [ 'Idempotency-Key' => "c-$b" ]);
        is($r1->{status}, 200, "cluster $b: 200");
        is($r2->{body}, $r1->{body}, "cluster $b: the repeat gets the original id");
        my $p = $c->primary_of_slot($slot{$b});
        $owner{ $p->port }++;
        is($p->cmd('GET', "eb:{$b}:dedupe:src:s.src:c-$b"), $r1->{json}{eventId},
           "cluster $b: the dedupe key is on the bus's primary " . $p->addr);
        is($c->xlen("eb:{$b}:events"), 1, "cluster $b: one event");
        is($c->xlen("eb:{$b}:target:a"), 1, "cluster $b: one entry in target a");
    }
    is(scalar keys %owner, 2, 'cluster: two buses on two primaries');

    my $b = $bus[1];
    my $ans = simultaneous($cn->port, "/$b", 100, '{"n":1}',
                           'Idempotency-Key: same');
    check_simultaneous($ans, 'cluster: 100 at once',
                       sub { $c->xlen("eb:{$b}:events") - 1 },
                       [ [ a => sub { $c->xlen("eb:{$b}:target:a") - 1 } ],
                         [ b => sub { $c->xlen("eb:{$b}:target:b") - 1 } ] ]);

    my $ev = sub { qq({"specversion":"1.0","id":"$_[0]","source":"/t","type":"t.t"}) };
    my $r = post($cn, '/pe', ctype => 'application/cloudevents-batch+json',
                 body => '[' . join(',', $ev->('p1'), $ev->('p1'), $ev->('p2')) . ']');
    is($r->{status}, 200, 'cluster PutEvents: 200');
    is_deeply([ map { $_->{eventId} } @{ $r->{json}{entries} } ], [qw(p1 p1 p2)],
              'cluster PutEvents: entries');
    my $r2 = post($cn, '/pe', ctype => 'application/cloudevents+json',
                  body => $ev->('p2'));
    is($r2->{status}, 200, 'cluster PutEvents: a later repeat 200');
    is($c->xlen("eb:{$bus[2]}:events"), 2, 'cluster PutEvents: two events');
    is($c->xlen("eb:{$bus[2]}:target:b"), 2, 'cluster PutEvents: their fan-out');

    my $m = $cn->metrics;
    is($m->{+DEDUP}, 2 + 99 + 2, 'cluster: deduplicated_total');
    is($m->{'eventbridge_redis_errors_total{kind="wait"}'}, 0,
       'cluster: WAIT 1 answered for every script');
}

# A slot migration under load: EVALs are resent after ASK and TRYAGAIN.
# Requests come in pairs with the same key: each pair has one event, and
# both of its 2xx carry its id; no event is stored twice.
{
    my $b = $bus[0];
    my $to = $c->primary_of_slot($slot{ $bus[1] });
    my $m0 = $cn->metrics;
    my $load = EBTest::Load->start(url => 'http://127.0.0.1:' . $cn->port . '/mig',
                                   rate => 40, seconds => 6, concurrency => 32,
                                   timeout => 6, body => sub {
                                       my $k = int($_[0] / 2);
                                       qq({"k":"m$k","i":$_[0]}) });
    sleep 1;
    my $moved = $c->migrate_slot($slot{$b}, $to, pause => 0.3,
                                 keys_per_step => 100);
    my $res = $load->wait;
    diag("dedupe: migration of slot $slot{$b} ($moved keys) under load: "
         . EBTest::Load->summary($res));
    my $m1 = $cn->metrics;
    diag('dedupe: migration: ' . join ', ', map {
        "$_ +" . (($m1->{$_} // 0) - ($m0->{$_} // 0)) }
        'eventbridge_redis_redirections_total{kind="moved"}',
        'eventbridge_redis_redirections_total{kind="ask"}',
        'eventbridge_redis_retries_total');
    is($c->primary_of_slot($slot{$b})->port, $to->port, 'dedupe migration: the slot moved');
    is($res->{other} + $res->{errors}, 0,
       'dedupe migration: every request answered, 2xx or 503');

    check_pairs($b, $res, 'dedupe migration');
}

# kill -9 the primary of a bus under the same load: what was in flight is
# resent to the new primary; a script that had run there (replicated:
# WAIT 1) finds its own token
{
    my $b = $bus[1];
    my $load = EBTest::Load->start(url => 'http://127.0.0.1:' . $cn->port . '/kill',
                                   rate => 40, seconds => 8, concurrency => 32,
                                   timeout => 6, body => sub {
                                       my $k = int($_[0] / 2);
                                       qq({"k":"m$k","i":$_[0]}) });
    sleep 2;
    my $old = $c->kill9_primary_of_slot($slot{$b});
    my $new = $c->wait_failover($slot{$b}, $old, 25);
    ok($new, 'dedupe failover: a replica took over');
    my $res = $load->wait;
    diag('dedupe: primary killed under load: ' . EBTest::Load->summary($res));
    is($res->{other} + $res->{errors}, 0,
       'dedupe failover: every request answered, 2xx or 503');
    check_pairs($b, $res, 'dedupe failover');
}

$cn->finish;

done_testing;
