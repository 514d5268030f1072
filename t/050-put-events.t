#!/usr/bin/perl
# The PutEvents endpoint (`eventbridge_put_events bus=BUS;`): CloudEvents 1.0
# over HTTP in structured, batched and binary mode. Valid events are stored
# in eb:{BUS}:events exactly as sent (data byte for byte, bar whitespace)
# plus the bus's attributes; invalid ones are answered per entry and never
# stored; all valid entries of one request go in one MULTI/EXEC. Also:
# whole-request errors (415, 413, 400), the security directives, Redis down
# (503 + Retry-After, nothing half-written) and back, nginx -t on bad
# directives, 405 for GET, and the invalid_event metric. The distributed
# tracing extension: an event's own traceparent kept (a malformed one is
# a 400), the request's W3C traceparent header or a new trace for the
# others, in every mode, and eventbridge_trace_context off.
use strict;
use warnings;
use Test::More;
use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time sleep);
use JSON::PP;
use EBTest;

my $redis = EBTest::Redis->start(appendonly => 'yes');
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_region cn-hangzhou;
    eventbridge_account 1148;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /put {
            eventbridge_put_events bus=demo;
        }
        location /small {
            eventbridge_put_events bus=small;
            eventbridge_max_batch 3;
        }
        location /tok {
            eventbridge_put_events bus=tok;
            eventbridge_token s3cret;
        }
        location /down {
            eventbridge_put_events bus=down;
        }
        location /notrace {
            eventbridge_put_events bus=nt;
            eventbridge_trace_context off;
        }
        location /status { eventbridge_status; }
    }
EOF
$ngx->start;

# --- helpers ----------------------------------------------------------------

use constant CT_ONE   => 'application/cloudevents+json';
use constant CT_BATCH => 'application/cloudevents-batch+json';

sub key_of { "eb:{$_[0]}:events" }
sub xlen { my $n = $redis->xlen(key_of($_[0])); ref $n ? -1 : $n }

# [ { raw => event text, ev => decoded, fields => {...}, id => stream id } ]
sub stored {
    my ($bus) = @_;
    return [ map { { id => $_->[0], fields => $_->[1],
                     raw => $_->[1]{event},
                     ev => EBTest::json_decode($_->[1]{event} // '') } }
             @{ $redis->xrange(key_of($bus)) } ];
}

sub post {
    my ($path, $ctype, $body, @hdr) = @_;
    return $ngx->request(method => 'POST', path => $path,
                         headers => [ defined $ctype ? ('Content-Type' => $ctype) : (),
                                      @hdr ],
                         body => $body);
}

# A minimal valid structured event, as JSON text.
sub ev_text {
    my ($id, %extra) = @_;
    my $t = qq({"specversion":"1.0","id":"$id","source":"/test","type":"t.test");
    $t .= ",$extra{more}" if $extra{more};
    return "$t}";
}

sub metrics { $ngx->metrics }
use constant INVALID => 'eventbridge_events_rejected_total{reason="invalid_event"}';
use constant ACCEPTED => 'eventbridge_events_accepted_total';

# a PutEvents answer with one failed entry carrying $code
sub is_single_failure {
    my ($r, $code, $what) = @_;
    subtest $what => sub {
        is($r->{status}, 400, 'status 400');
        like($r->{headers}{'content-type'} // '', qr{^application/json},
             'JSON answer');
        my $j = $r->{json} // {};
        is($j->{failedEntryCount}, 1, 'failedEntryCount 1');
        is(ref $j->{entries}, 'ARRAY', 'entries is an array');
        is(scalar @{ $j->{entries} // [] }, 1, 'one entry');
        my $e = $j->{entries}[0] // {};
        is($e->{errorCode}, $code, "errorCode $code") or diag $r->{body};
        like($e->{errorMessage} // '', qr/\S/, 'errorMessage not empty');
        ok(!exists $e->{eventId}, 'no eventId');
    };
}

# a whole-request error in the module's usual shape
sub is_whole_error {
    my ($r, $status, $code, $what) = @_;
    subtest $what => sub {
        is($r->{status}, $status, "status $status");
        like($r->{headers}{'content-type'} // '', qr{^application/json},
             'JSON answer');
        my $j = $r->{json} // {};
        is($j->{errorCode}, $code, "errorCode $code") or diag $r->{body};
        like($j->{errorMessage} // '', qr/\S/, 'errorMessage not empty');
        ok(!exists $j->{failedEntryCount}, 'not the PutEvents shape');
    };
}

# Redis MONITOR on its own connection: the commands Redis ran while $code
# ran, as [ [client, command, args...], ... ] (up to EXEC, or 3 s).
sub monitored {
    my ($code) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                PeerPort => $redis->port, Proto => 'tcp',
                                Timeout => 5) or die "monitor: $@";
    print {$s} "MONITOR\r\n";
    my $ok = <$s>;
    die "MONITOR: $ok" unless defined $ok && $ok =~ /^\+OK/;
    $code->();
    my $sel = IO::Select->new($s);
    my ($buf, @cmds) = ('');
    my $end = time + 3;
    while (time < $end) {
        last if grep { $_->[1] eq 'EXEC' } @cmds;
        next unless $sel->can_read($end - time);
        my $n = sysread($s, my $chunk, 65536);
        last unless $n;
        $buf .= $chunk;
        while ($buf =~ s/^\+([^\r\n]*)\r\n//) {
            my $line = $1;
            next unless $line =~ /^[\d.]+ \[\d+ ([^\]]+)\] (.*)$/;
            my ($client, $rest) = ($1, $2);
            my @args = $rest =~ /"((?:[^"\\]|\\.)*)"/g;
            push @cmds, [ $client, uc($args[0] // ''), @args[1 .. $#args] ];
        }
    }
    close $s;
    return \@cmds;
}

my $time_re = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
# a traceparent the edge started: version 00, random ids, sampled
my $tp_re = qr/^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-01$/;
my $m0 = metrics();
my $rejects = 0;     # requests expected to count as invalid_event

# --- structured mode: a valid event, stored exactly ------------------------

{
    my $data = '{ "a": 3.0e2, "b": [1, 2.50, {"c": null}], "s": "x\u00e9", "big": 12345678901234567890 }';
    my $body = '{"specversion":"1.0","id":"evt-1","source":"https://example.com/src",'
        . '"type":"com.example.created","subject":"orders/42",'
        . '"time":"2024-05-01T12:34:56.789+08:00","datacontenttype":"application/json",'
        . '"dataschema":"https://example.com/schema.json","myext":"v","num":42,"flag":true,'
        . '"aliyuneventbusname":"evil","aliyunregionid":"evil-region",'
        . '"aliyunaccountid":"666","aliyunpublishtime":"2000-01-01T00:00:00Z",'
        . '"aliyunpublishaddr":"10.9.9.9",'
        . qq("data":$data})
        ;
    my $r = post('/put', CT_ONE, $body);
    is($r->{status}, 200, 'structured: 200');
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         'structured: JSON answer');
    is_deeply($r->{json}, { failedEntryCount => 0,
                            entries => [ { eventId => 'evt-1' } ] },
              'structured: answer {"failedEntryCount":0,"entries":[{"eventId":"evt-1"}]}')
        or diag $r->{body};

    my $st = stored('demo');
    is(scalar @$st, 1, 'structured: one entry in eb:{demo}:events');
    my $e = $st->[0] // {};
    my $ev = $e->{ev} // {};
    ok(exists $e->{fields}{rules}, 'structured: entry has a "rules" field');
    my $pt = $ev->{aliyunpublishtime} // '';
    like($pt, $time_re, 'structured: aliyunpublishtime set by the bus (RFC 3339 UTC ms)');
    isnt($pt, '2000-01-01T00:00:00Z', 'structured: sender aliyunpublishtime replaced');
    my $tp = $ev->{traceparent} // '';
    like($tp, $tp_re, 'structured: no traceparent sent, a new one started');

    my %want = (
        specversion => '1.0', id => 'evt-1',
        source => 'https://example.com/src', type => 'com.example.created',
        subject => 'orders/42', time => '2024-05-01T12:34:56.789+08:00',
        datacontenttype => 'application/json',
        dataschema => 'https://example.com/schema.json',
        myext => 'v', num => 42, flag => JSON::PP::true,
        aliyuneventbusname => 'demo', aliyunregionid => 'cn-hangzhou',
        aliyunaccountid => '1148', aliyunpublishaddr => '127.0.0.1',
        aliyunpublishtime => $pt, traceparent => $tp,
    );
    my %got = %$ev;
    my $gdata = delete $got{data};
    is_deeply(\%got, \%want, 'structured: every attribute stored, bus attributes replaced')
        or diag $e->{raw};
    is($gdata->{s}, "x\x{e9}", 'structured: data decodes');

    my $raw = $e->{raw} // '';
    my $min = '{"a":3.0e2,"b":[1,2.50,{"c":null}],"s":"x\u00e9","big":12345678901234567890}';
    my $tail = '"data":' . $min . '}';
    ok(length($raw) >= length($tail) && substr($raw, -length($tail)) eq $tail,
       'structured: data stored byte-exact (3.0e2, 2.50, big integer, \u escape), last')
        or diag $raw;
    for my $attr (qw(aliyuneventbusname aliyunregionid aliyunaccountid
                  aliyunpublishtime aliyunpublishaddr)) {
        my $n = () = $raw =~ /"\Q$attr\E"/g;
        is($n, 1, "structured: $attr appears once");
    }
    # the sender's values, looked for outside what the edge set: the
    # random trace id and the publish time's milliseconds can hold "666"
    (my $rest = $raw) =~ s/\Q$tp\E|\Q$pt\E//g;
    unlike($rest, qr/evil|666|10\.9\.9\.9|2000-01-01/, 'structured: no sender aliyun* value kept');
    my $exact = '{"specversion":"1.0","id":"evt-1","source":"https://example.com/src",'
        . '"type":"com.example.created","subject":"orders/42",'
        . '"time":"2024-05-01T12:34:56.789+08:00","datacontenttype":"application/json",'
        . '"dataschema":"https://example.com/schema.json","myext":"v","num":42,"flag":true,'
        . qq("traceparent":"$tp",)
        . qq("aliyunpublishtime":"$pt","aliyuneventbusname":"demo",)
        . '"aliyunregionid":"cn-hangzhou","aliyunaccountid":"1148",'
        . '"aliyunpublishaddr":"127.0.0.1",'
        . $tail;
    is($raw, $exact, 'structured: stored text is exactly the normalized event');
}

# --- structured mode: invalid events → 400, nothing stored -----------------

{
    my $before = xlen('demo');
    my @cases = (
        ['missing id', 'MissingAttribute',
         '{"specversion":"1.0","source":"/s","type":"t"}'],
        ['missing source', 'MissingAttribute',
         '{"specversion":"1.0","id":"x","type":"t"}'],
        ['missing type', 'MissingAttribute',
         '{"specversion":"1.0","id":"x","source":"/s"}'],
        ['missing specversion', 'MissingAttribute',
         '{"id":"x","source":"/s","type":"t"}'],
        ['null id', 'MissingAttribute',
         '{"specversion":"1.0","id":null,"source":"/s","type":"t"}'],
        ['specversion 0.3', 'InvalidSpecVersion',
         '{"specversion":"0.3","id":"x","source":"/s","type":"t"}'],
        ['extension name myExt', 'InvalidAttributeName',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t","myExt":"v"}'],
        ['extension name my-ext', 'InvalidAttributeName',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t","my-ext":"v"}'],
        ['time not RFC 3339', 'InvalidAttributeValue',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2024-05-01 12:00:00"}'],
        ['time without offset', 'InvalidAttributeValue',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2024-05-01T12:00:00"}'],
        ['data and data_base64', 'InvalidData',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t","data":1,"data_base64":"AA=="}'],
        ['not an object', 'InvalidEvent', '[1,2]'],
        ['not JSON', 'InvalidJSON', '{"specversion":"1.0",'],
        ['a string left open after the event', 'InvalidJSON',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t"}"x'],
        ['a lone low surrogate escape', 'InvalidJSON',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t","subject":"\udc00"}'],
        ['a lone high surrogate in data', 'InvalidJSON',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t","data":{"a":"\ud800"}}'],
        ['a key twice in data', 'InvalidJSON',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t","data":{"amount":5,"amount":5000}}'],
        ['an attribute twice', 'DuplicateAttribute',
         '{"specversion":"1.0","id":"x","source":"/s","type":"t","type":"u"}'],
    );
    for my $c (@cases) {
        my ($what, $code, $body) = @$c;
        is_single_failure(post('/put', CT_ONE, $body), $code,
                          "structured invalid: $what → 400 $code");
        $rejects++;
    }
    is(xlen('demo'), $before, 'structured invalid: nothing stored');
}

# --- batched mode -----------------------------------------------------------

{
    my $before = xlen('demo');
    my $macc = metrics()->{+ACCEPTED} // 0;
    my $body = '[' . join(',',
        ev_text('b-1'),
        '{"specversion":"1.0","source":"/s","type":"t"}',
        ev_text('b-2', more => '"data":{"n":1.0}'),
        '"not an object"',
        '{"specversion":"0.3","id":"b-x","source":"/s","type":"t"}',
        ev_text('b-3', more => '"Bad":1'),
        ev_text('b-4'),
    ) . ']';
    my $r;
    my $cmds = monitored(sub { $r = post('/put', CT_BATCH, $body) });
    is($r->{status}, 200, 'batch mixed: 200');
    my $j = $r->{json} // {};
    is($j->{failedEntryCount}, 4, 'batch mixed: failedEntryCount 4');
    my @codes = map { $_->{eventId} // $_->{errorCode} // '?' }
                @{ $j->{entries} // [] };
    is_deeply(\@codes, [ 'b-1', 'MissingAttribute', 'b-2', 'InvalidEvent',
                         'InvalidSpecVersion', 'InvalidAttributeName', 'b-4' ],
              'batch mixed: per-entry results in order') or diag $r->{body};
    ok(!(grep { exists $_->{errorCode} && !length($_->{errorMessage} // '') }
         @{ $j->{entries} // [] }), 'batch mixed: every error has a message');
    is(xlen('demo'), $before + 3, 'batch mixed: exactly the 3 valid entries stored (XLEN)');
    my @ids = map { $_->{ev}{id} } @{ stored('demo') }[ $before .. $before + 2 ];
    is_deeply(\@ids, [ 'b-1', 'b-2', 'b-4' ], 'batch mixed: stored in order');
    like(stored('demo')->[$before + 1]{raw} // '', qr/"data":\{"n":1\.0\}\}$/,
         'batch mixed: entry data byte-exact');
    is(metrics()->{+ACCEPTED} // 0, $macc + 3, 'batch mixed: 3 events counted accepted');

    # one MULTI/EXEC from nginx holding the three XADDs
    my @x = grep { $_->[1] =~ /^(MULTI|XADD|EXEC)$/ } @$cmds;
    my @seq = map { $_->[1] } @x;
    is_deeply(\@seq, [ 'MULTI', 'XADD', 'XADD', 'XADD', 'EXEC' ],
              'batch mixed: MULTI, 3 × XADD, EXEC') or diag explain \@seq;
    my %clients = map { $_->[0] => 1 } @x;
    is(scalar keys %clients, 1, 'batch mixed: one client, one transaction');
    ok(!(grep { $_->[1] eq 'XADD' && $_->[2] ne key_of('demo') } @x),
       'batch mixed: every XADD to eb:{demo}:events');
}

{
    my $before = xlen('demo');
    my $r = post('/put', CT_BATCH, '[]');
    is($r->{status}, 200, 'empty batch: 200');
    is_deeply($r->{json}, { failedEntryCount => 0, entries => [] },
              'empty batch: {"failedEntryCount":0,"entries":[]}') or diag $r->{body};
    $r = post('/put', CT_BATCH, " [ \n ] ");
    is($r->{status}, 200, 'empty batch with whitespace: 200');
    is(xlen('demo'), $before, 'empty batch: nothing stored');

    # a batch of only invalid entries: 200, nothing stored
    $r = post('/put', CT_BATCH, '[{"id":"x"},1]');
    is($r->{status}, 200, 'all-invalid batch: 200');
    is($r->{json}{failedEntryCount}, 2, 'all-invalid batch: failedEntryCount 2');
    is(xlen('demo'), $before, 'all-invalid batch: nothing stored');
}

{
    # eventbridge_max_batch 3
    my $r = post('/small', CT_BATCH,
                 '[' . join(',', map { ev_text("s-$_") } 1 .. 4) . ']');
    is_whole_error($r, 413, 'BatchTooLarge', 'batch of 4 over max_batch 3 → 413');
    $rejects++;
    is(xlen('small'), 0, 'batch over max_batch: nothing stored');
    $r = post('/small', CT_BATCH,
              '[' . join(',', map { ev_text("s-$_") } 1 .. 3) . ']');
    is($r->{status}, 200, 'batch of exactly max_batch 3: 200');
    is(xlen('small'), 3, 'batch of exactly max_batch: 3 stored');

    # the default: 100
    my $before = xlen('demo');
    $r = post('/put', CT_BATCH,
              '[' . join(',', map { ev_text("m-$_") } 1 .. 101) . ']');
    is_whole_error($r, 413, 'BatchTooLarge', 'batch of 101 over default 100 → 413');
    $rejects++;
    is(xlen('demo'), $before, 'batch of 101: nothing stored');
    $r = post('/put', CT_BATCH,
              '[' . join(',', map { ev_text("m-$_") } 1 .. 100) . ']');
    is($r->{status}, 200, 'batch of 100: 200');
    is($r->{json}{failedEntryCount}, 0, 'batch of 100: no failures');
    is(scalar @{ $r->{json}{entries} // [] }, 100, 'batch of 100: 100 entries');
    is(xlen('demo'), $before + 100, 'batch of 100: 100 stored');
}

{
    my $before = xlen('demo');
    is_whole_error(post('/put', CT_BATCH, ev_text('obj')), 400, 'InvalidBatch',
                   'batch that is an object → 400 InvalidBatch');
    is_whole_error(post('/put', CT_BATCH, '"str"'), 400, 'InvalidBatch',
                   'batch that is a string → 400 InvalidBatch');
    is_whole_error(post('/put', CT_BATCH, '[' . ev_text('a') . ','), 400,
                   'InvalidJSON', 'batch that is not JSON → 400 InvalidJSON');
    is_whole_error(post('/put', CT_BATCH, '[' . ev_text('a') . ']"x'), 400,
                   'InvalidJSON',
                   'batch with a string left open after it → 400 InvalidJSON');
    is_whole_error(post('/put', CT_BATCH, '[' . ev_text('a') . ',{"specversion":'
                        . '"1.0","id":"d","source":"/s","type":"t","data":'
                        . '{"amount":5,"amount":5000}}]'), 400, 'InvalidJSON',
                   'batch with a key twice in data → 400 InvalidJSON');
    is_whole_error(post('/put', CT_BATCH, '[{"specversion":"1.0","id":"d",'
                        . '"source":"/s","type":"t","subject":"\udc00"}]'),
                   400, 'InvalidJSON',
                   'batch with a lone surrogate escape → 400 InvalidJSON');
    $rejects += 6;
    is(xlen('demo'), $before, 'bad batches: nothing stored');
}

# --- binary mode ------------------------------------------------------------

my @ce = ('ce-specversion' => '1.0', 'ce-source' => '/bin', 'ce-type' => 't.bin');

{
    my $before = xlen('demo');
    my $r = post('/put', 'application/json', '{ "x": 1.50, "y": [ 3.0e2 ] }',
                 @ce, 'ce-id' => 'bin-1', 'ce-subject' => 'caf%C3%A9',
                 'ce-myext' => '"quoted value"');
    is($r->{status}, 200, 'binary JSON: 200') or diag $r->{body};
    is_deeply($r->{json}, { failedEntryCount => 0,
                            entries => [ { eventId => 'bin-1' } ] },
              'binary JSON: answer');
    my $e = stored('demo')->[$before] // {};
    my $ev = $e->{ev} // {};
    is($ev->{specversion}, '1.0', 'binary: specversion');
    is($ev->{id}, 'bin-1', 'binary: id');
    is($ev->{source}, '/bin', 'binary: source');
    is($ev->{type}, 't.bin', 'binary: type');
    is($ev->{subject}, "caf\x{e9}", 'binary: ce-subject caf%C3%A9 decoded to café');
    is($ev->{myext}, 'quoted value', 'binary: quoted header value unquoted');
    is($ev->{datacontenttype}, 'application/json', 'binary: Content-Type → datacontenttype');
    is_deeply($ev->{data}, { x => 1.5, y => [300] }, 'binary: JSON body stays JSON');
    like($e->{raw} // '', qr/"data":\{"x":1\.50,"y":\[3\.0e2\]\}\}$/,
         'binary: JSON data byte-exact') or diag $e->{raw};
    ok(!exists $ev->{data_base64}, 'binary JSON: no data_base64');
    is($ev->{aliyuneventbusname}, 'demo', 'binary: bus attributes added');
    like($ev->{aliyunpublishtime} // '', $time_re, 'binary: aliyunpublishtime');

    $r = post('/put', 'text/plain', "hello, w\xc3\xb6rld\n",
              @ce, 'ce-id' => 'bin-2');
    is($r->{status}, 200, 'binary text: 200') or diag $r->{body};
    $ev = stored('demo')->[$before + 1]{ev} // {};
    is($ev->{data}, "hello, w\x{f6}rld\n", 'binary: text/plain body becomes a string');
    is($ev->{datacontenttype}, 'text/plain', 'binary text: datacontenttype');
    ok(!exists $ev->{data_base64}, 'binary text: no data_base64');

    $r = post('/put', 'application/octet-stream', "\x00\x01\xfe\xff",
              @ce, 'ce-id' => 'bin-3');
    is($r->{status}, 200, 'binary octets: 200') or diag $r->{body};
    $ev = stored('demo')->[$before + 2]{ev} // {};
    is($ev->{data_base64}, 'AAH+/w==', 'binary: octet-stream body becomes data_base64');
    ok(!exists $ev->{data}, 'binary octets: no data');
    is($ev->{datacontenttype}, 'application/octet-stream', 'binary octets: datacontenttype');

    $before = xlen('demo');
    is_single_failure(post('/put', 'text/plain', 'x', @ce, 'ce-id' => 'bin-4',
                           'ce-subject' => '%FF'),
                      'InvalidUTF8', 'binary: ce-subject %FF → 400 InvalidUTF8');
    is_single_failure(post('/put', 'text/plain', 'x', 'ce-id' => 'bin-5',
                           'ce-source' => '/bin', 'ce-type' => 't.bin'),
                      'MissingAttribute', 'binary: no ce-specversion → 400 MissingAttribute');
    is_single_failure(post('/put', 'application/json', '{"a":', @ce, 'ce-id' => 'bin-6'),
                      'InvalidJSON', 'binary: JSON Content-Type with a bad body → 400 InvalidJSON');
    is_single_failure(post('/put', 'application/json', '{"a":1}"x', @ce, 'ce-id' => 'bin-7'),
                      'InvalidJSON', 'binary: a string left open after the body → 400 InvalidJSON');
    is_single_failure(post('/put', 'application/json', '{"amount":5,"amount":5000}', @ce,
                           'ce-id' => 'bin-8'),
                      'InvalidJSON', 'binary: a key twice in the body → 400 InvalidJSON');
    is_single_failure(post('/put', 'application/json', '["\udc00"]', @ce, 'ce-id' => 'bin-9'),
                      'InvalidJSON', 'binary: a lone surrogate escape → 400 InvalidJSON');
    $rejects += 6;
    is(xlen('demo'), $before, 'binary invalid: nothing stored');
}

# --- trace context ----------------------------------------------------------

my $TP  = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
my $TP2 = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';

# the stored events of bus demo from index $from on, by id
sub stored_by_id {
    my ($from) = @_;
    my $st = stored('demo');
    return { map { (($_->{ev}{id} // '') => $_) } @$st[$from .. $#$st] };
}

{
    my $before = xlen('demo');
    my @w3c = (traceparent => $TP2, tracestate => 'congo=t61rcWkgMzE');

    # structured: the request's header for an event without one
    my $r = post('/put', CT_ONE, ev_text('tr-1'), @w3c);
    is($r->{status}, 200, 'trace, structured + traceparent header: 200') or diag $r->{body};
    my $ev = stored('demo')->[$before]{ev} // {};
    is($ev->{traceparent}, $TP2, 'trace, structured: the request\'s traceparent kept');
    is($ev->{tracestate}, 'congo=t61rcWkgMzE', 'trace, structured: and its tracestate');

    # the event's own wins, and the request's tracestate is not mixed in
    $r = post('/put', CT_ONE, ev_text('tr-2', more => qq("traceparent":"$TP")), @w3c);
    is($r->{status}, 200, 'trace, structured + own traceparent: 200') or diag $r->{body};
    my $e = stored('demo')->[$before + 1] // {};
    is($e->{ev}{traceparent}, $TP, 'trace, structured: the event\'s own traceparent kept');
    ok(!exists $e->{ev}{tracestate}, 'trace, structured: no tracestate of the request with it');
    my $n = () = ($e->{raw} // '') =~ /"traceparent"/g;
    is($n, 1, 'trace, structured: traceparent once');

    $r = post('/put', CT_ONE, ev_text('tr-3', more => qq("traceparent":"$TP","tracestate":"rojo=1, congo=2")));
    is($r->{status}, 200, 'trace, structured + own tracestate: 200') or diag $r->{body};
    is(stored('demo')->[$before + 2]{ev}{tracestate}, 'rojo=1, congo=2',
       'trace, structured: the event\'s own tracestate kept as sent');

    # a malformed or invalid request header is ignored: a new trace, 200
    for my $bad ('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
                 '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
                 'garbage') {
        my $i = xlen('demo');
        $r = post('/put', CT_ONE, ev_text("tr-bad-$i"), traceparent => $bad,
                  tracestate => 'congo=t61rcWkgMzE');
        is($r->{status}, 200, "trace, header \"$bad\" ignored: 200") or diag $r->{body};
        $ev = stored('demo')->[$i]{ev} // {};
        like($ev->{traceparent} // '', $tp_re, "trace, header \"$bad\": a new trace");
        ok(!exists $ev->{tracestate}, "trace, header \"$bad\": its tracestate dropped");
    }

    # two traceparent headers: neither
    my $i = xlen('demo');
    $r = post('/put', CT_ONE, ev_text('tr-two'), traceparent => $TP, traceparent => $TP2);
    is($r->{status}, 200, 'trace, two traceparent headers: 200') or diag $r->{body};
    $ev = stored('demo')->[$i]{ev} // {};
    like($ev->{traceparent} // '', $tp_re, 'trace, two traceparent headers: a new trace');
    ok(($ev->{traceparent} // '') ne $TP && ($ev->{traceparent} // '') ne $TP2,
       'trace, two traceparent headers: neither kept');

    # a malformed tracestate header is dropped, the traceparent kept;
    # several are one list
    $i = xlen('demo');
    post('/put', CT_ONE, ev_text('tr-ts-bad'), traceparent => $TP, tracestate => 'A=1');
    post('/put', CT_ONE, ev_text('tr-ts-two'), traceparent => $TP,
         tracestate => 'rojo=1', tracestate => ' congo=2 ');
    my $by = stored_by_id($i);
    is($by->{'tr-ts-bad'}{ev}{traceparent}, $TP, 'trace, malformed tracestate: traceparent kept');
    ok(!exists $by->{'tr-ts-bad'}{ev}{tracestate}, 'trace, malformed tracestate: dropped');
    is($by->{'tr-ts-two'}{ev}{tracestate}, 'rojo=1,congo=2',
       'trace, two tracestate headers: one list');

    # a long tracestate header is cut to 512 bytes, whole members
    my @m = map { sprintf('k%02d=%s', $_, 'v' x 60) } 1 .. 10;     # 64 each
    $i = xlen('demo');
    post('/put', CT_ONE, ev_text('tr-ts-long'), traceparent => $TP,
         tracestate => join(',', @m));
    is(stored('demo')->[$i]{ev}{tracestate}, join(',', @m[0 .. 6]),
       'trace, a 649-byte tracestate: the first 7 members (454 bytes) kept');
}

{
    # invalid traceparent attributes: 400, nothing stored
    my $before = xlen('demo');
    is_single_failure(post('/put', CT_ONE, ev_text('tr-x1', more => '"traceparent":"00-abc"')),
                      'InvalidAttributeValue', 'trace: a malformed traceparent attribute → 400');
    is_single_failure(post('/put', CT_ONE, ev_text('tr-x2', more => '"traceparent":5')),
                      'InvalidAttributeValue', 'trace: a number as traceparent → 400');
    is_single_failure(post('/put', CT_ONE, ev_text('tr-x3', more => '"tracestate":"a=1"'),
                           traceparent => $TP),
                      'InvalidAttributeValue', 'trace: a tracestate without traceparent → 400');
    is_single_failure(post('/put', CT_ONE, ev_text('tr-x4',
                           more => qq("traceparent":"$TP","tracestate":"A=1"))),
                      'InvalidAttributeValue', 'trace: a malformed tracestate attribute → 400');
    is_single_failure(post('/put', 'text/plain', 'x', @ce, 'ce-id' => 'tr-x5',
                           'ce-traceparent' => 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
                      'InvalidAttributeValue', 'trace: binary, ce-traceparent version ff → 400');
    $rejects += 5;
    is(xlen('demo'), $before, 'trace: invalid attributes, nothing stored');
}

{
    # binary: ce-traceparent is the event's; the W3C header the request's
    my $before = xlen('demo');
    my $r = post('/put', 'text/plain', 'x', @ce, 'ce-id' => 'tr-b1',
                 'ce-traceparent' => $TP, 'ce-tracestate' => 'rojo=1',
                 traceparent => $TP2, tracestate => 'congo=2');
    is($r->{status}, 200, 'trace, binary + ce-traceparent: 200') or diag $r->{body};
    $r = post('/put', 'text/plain', 'x', @ce, 'ce-id' => 'tr-b2',
              traceparent => $TP2, tracestate => 'congo=2');
    is($r->{status}, 200, 'trace, binary + traceparent: 200') or diag $r->{body};
    $r = post('/put', 'text/plain', 'x', @ce, 'ce-id' => 'tr-b3');
    is($r->{status}, 200, 'trace, binary without: 200') or diag $r->{body};
    my $by = stored_by_id($before);
    is($by->{'tr-b1'}{ev}{traceparent}, $TP, 'trace, binary: ce-traceparent kept');
    is($by->{'tr-b1'}{ev}{tracestate}, 'rojo=1', 'trace, binary: ce-tracestate kept');
    is($by->{'tr-b2'}{ev}{traceparent}, $TP2, 'trace, binary: the traceparent header');
    is($by->{'tr-b2'}{ev}{tracestate}, 'congo=2', 'trace, binary: the tracestate header');
    like($by->{'tr-b3'}{ev}{traceparent} // '', $tp_re, 'trace, binary without: a new trace');
}

{
    # batch: each entry its own, else the request's; an invalid one fails alone
    my $before = xlen('demo');
    my $body = '[' . join(',', ev_text('tr-a1', more => qq("traceparent":"$TP")),
                          ev_text('tr-a2'),
                          ev_text('tr-a3', more => '"traceparent":"nope"'),
                          ev_text('tr-a4')) . ']';
    my $r = post('/put', CT_BATCH, $body, traceparent => $TP2);
    is($r->{status}, 200, 'trace, batch: 200') or diag $r->{body};
    is($r->{json}{failedEntryCount}, 1, 'trace, batch: one failure');
    is($r->{json}{entries}[2]{errorCode}, 'InvalidAttributeValue',
       'trace, batch: the malformed entry fails alone');
    my $by = stored_by_id($before);
    is($by->{'tr-a1'}{ev}{traceparent}, $TP, 'trace, batch: an entry\'s own kept');
    is($by->{'tr-a2'}{ev}{traceparent}, $TP2, 'trace, batch: the request\'s for the others');
    is($by->{'tr-a4'}{ev}{traceparent}, $TP2, 'trace, batch: the request\'s for each');
    ok(!exists $by->{'tr-a3'}, 'trace, batch: the malformed entry not stored');

    # no header: one new trace per request, shared by its entries
    $before = xlen('demo');
    post('/put', CT_BATCH, '[' . ev_text('tr-n1') . ',' . ev_text('tr-n2') . ']');
    post('/put', CT_BATCH, '[' . ev_text('tr-n3') . ']');
    $by = stored_by_id($before);
    my @tp = map { $by->{$_}{ev}{traceparent} // '' } qw(tr-n1 tr-n2 tr-n3);
    like($tp[0], $tp_re, 'trace, batch without: a new trace');
    is($tp[1], $tp[0], 'trace, batch without: shared by the request\'s entries');
    isnt(substr($tp[2], 3, 32), substr($tp[0], 3, 32),
         'trace, batch without: another request, another trace-id');
}

{
    # eventbridge_trace_context off: nothing kept or added, no checks
    my $r = post('/notrace', CT_ONE, ev_text('nt-1'), traceparent => $TP);
    is($r->{status}, 200, 'trace off: 200') or diag $r->{body};
    $r = post('/notrace', CT_ONE, ev_text('nt-2', more => '"traceparent":5,"tracestate":"A"'));
    is($r->{status}, 200, 'trace off: traceparent and tracestate are plain extensions')
        or diag $r->{body};
    my $st = stored('nt');
    ok(!exists $st->[0]{ev}{traceparent}, 'trace off: no traceparent added');
    is($st->[1]{ev}{traceparent}, 5, 'trace off: an extension like any other');
}

# --- whole-request problems, security, methods ------------------------------

{
    my $before = xlen('demo');
    is_whole_error(post('/put', 'application/cloudevents+avro', "\x00\x01"), 415,
                   'UnsupportedMediaType', 'application/cloudevents+avro → 415');
    is_whole_error(post('/put', 'application/cloudevents-batch+avro', "\x00"), 415,
                   'UnsupportedMediaType', 'application/cloudevents-batch+avro → 415');
    $rejects += 2;
    is(xlen('demo'), $before, '415: nothing stored');

    my $r = $ngx->request(method => 'GET', path => '/put');
    is($r->{status}, 405, 'GET → 405');
    is($r->{headers}{allow}, 'POST', 'GET: Allow: POST');
    is($r->{json}{errorCode}, 'MethodNotAllowed', 'GET: errorCode MethodNotAllowed');

    $r = post('/tok', CT_ONE, ev_text('tok-1'));
    is($r->{status}, 401, 'token: 401 without it');
    is($r->{json}{errorCode}, 'InvalidToken', 'token: errorCode InvalidToken');
    $r = post('/tok?token=wrong', CT_ONE, ev_text('tok-2'));
    is($r->{status}, 401, 'token: 401 with a wrong one');
    is(xlen('tok'), 0, 'token: nothing stored when refused');
    $r = post('/tok?token=s3cret', CT_ONE, ev_text('tok-3'));
    is($r->{status}, 200, 'token: 200 with it');
    is(xlen('tok'), 1, 'token: stored with it');
}

{
    my $m1 = metrics();
    is(($m1->{+INVALID} // 0) - ($m0->{+INVALID} // 0), $rejects,
       "metrics: invalid_event counted $rejects rejected PutEvents requests");
}

# --- Redis down: 503 + Retry-After, nothing half-written; then back ---------

{
    my $r = post('/down', CT_ONE, ev_text('d-0'));
    is($r->{status}, 200, 'redis up: 200');
    my $before = xlen('down');
    is($before, 1, 'redis up: stored');

    $redis->stop;
    my $batch = '[' . join(',', ev_text('d-1'), ev_text('d-2'), '{}', ev_text('d-3')) . ']';
    for my $i (1 .. 2) {
        $r = post('/down', CT_BATCH, $batch);
        is($r->{status}, 503, "redis stopped, batch $i: 503");
        like($r->{headers}{'retry-after'} // '', qr/^\d+$/,
             "redis stopped, batch $i: Retry-After");
        is($r->{json}{errorCode}, 'ServiceUnavailable',
           "redis stopped, batch $i: errorCode ServiceUnavailable");
    }
    $r = post('/down', CT_ONE, ev_text('d-4'));
    is($r->{status}, 503, 'redis stopped, structured: 503');
    like($r->{headers}{'retry-after'} // '', qr/^\d+$/,
         'redis stopped, structured: Retry-After');

    $redis->restart;
    is(xlen('down'), $before, 'redis restarted: nothing of the refused requests written');

    my ($got, $t0) = (undef, time);
    my $n = 0;
    while (time - $t0 < 8) {
        $n++;
        $r = post('/down', CT_BATCH, '[' . ev_text("d-ok-$n") . ',' . ev_text("d-ok2-$n") . ']');
        if ($r->{status} == 200) { $got = $r; last }
        sleep 0.1;
    }
    ok($got, 'redis restarted: 200 again') or diag $r->{raw};
    my @ids = map { $_->{ev}{id} } @{ stored('down') };
    is_deeply(\@ids, [ 'd-0', "d-ok-$n", "d-ok2-$n" ],
              'redis restarted: exactly the acknowledged events stored');
}

$ngx->finish;

# --- nginx -t ---------------------------------------------------------------

sub conf_with {
    my ($loc) = @_;
    return <<"EOF";
    eventbridge_redis 127.0.0.1:6379;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /put {
            $loc
        }
    }
EOF
}

sub conf_test {
    my ($loc) = @_;
    my $n = EBTest::Nginx->new(http => conf_with($loc));
    return $n->test_conf;
}

{
    my ($rc, $out) = conf_test('eventbridge_put_events bus=ok; eventbridge_max_batch 10000;');
    is($rc, 0, 'nginx -t: a valid put_events location passes') or diag $out;

    ($rc, $out) = conf_test('eventbridge_put_events demo;');
    isnt($rc, 0, 'nginx -t: eventbridge_put_events without bus= fails');
    like($out, qr/\[emerg\].*bus=/, 'nginx -t: says bus= is missing') or diag $out;

    ($rc, $out) = conf_test('eventbridge_put_events bus=;');
    isnt($rc, 0, 'nginx -t: eventbridge_put_events with an empty bus= fails');

    ($rc, $out) = conf_test('eventbridge_put_events bus=ok; eventbridge_max_batch 0;');
    isnt($rc, 0, 'nginx -t: eventbridge_max_batch 0 fails');
    like($out, qr/\[emerg\].*(between|max_batch)/, 'nginx -t: names the bound')
        or diag $out;

    ($rc, $out) = conf_test('eventbridge_put_events bus=ok; eventbridge_max_batch 10001;');
    isnt($rc, 0, 'nginx -t: eventbridge_max_batch 10001 fails');

    ($rc, $out) = conf_test('eventbridge_put_events bus=ok; eventbridge_trace_context off;');
    is($rc, 0, 'nginx -t: eventbridge_trace_context off passes') or diag $out;
    ($rc, $out) = conf_test('eventbridge_put_events bus=ok; eventbridge_trace_context maybe;');
    isnt($rc, 0, 'nginx -t: eventbridge_trace_context maybe fails');
    like($out, qr/\[emerg\].*eventbridge_trace_context.*"on" or "off"/,
         'nginx -t: says it takes on or off') or diag $out;
}

done_testing;
