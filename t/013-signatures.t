#!/usr/bin/perl
# eventbridge_signature: webhook signatures checked on the raw body
# before anything is appended. Requests are signed as the providers sign
# them, by their own npm libraries where they have one (t/node/sign.mjs):
# GitHub, GitLab, Stripe, Shopify, Slack, Standard Webhooks (v1 and
# v1a), DingTalk, and the generic hmac scheme. Per scheme: a good
# signature is taken; a wrong key, a tampered body, a timestamp too old
# or too far ahead, a missing or malformed header get 401
# InvalidSignature naming the check, and append nothing. Keys rotate
# (two keys; two signatures in one header), failures are counted by
# reason, secrets never reach the log, and `nginx -t` refuses bad
# arguments.
use strict;
use warnings;
use Test::More;
use EBTest;
use Digest::SHA qw(hmac_sha512_base64);
use File::Temp qw(tempdir);
use FindBin;

my $NODE_DIR = "$FindBin::Bin/node";

plan skip_all => 'node is not installed' unless `node --version 2>/dev/null`;
plan skip_all => 't/node/node_modules missing (make node-deps)'
    unless -d "$NODE_DIR/node_modules/stripe";

my $KEY = 'eb:{sig}:events';
my $dir = tempdir('eb-sig-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# Ed25519 pair of the Standard Webhooks v1a sender
my $pair = sign(scheme => 'keygen');

my %secret = (
    github     => "It's a Secret to Everybody",
    github_old => 'gh-old-secret',
    gitlab1    => 'glpat-token-one',
    gitlab2    => 'glpat-token-two',
    stripe1    => 'whsec_stripe_current_0123456789',
    stripe2    => 'whsec_stripe_next_9876543210',
    shopify    => 'shpss_0123456789abcdef',
    slack      => '8f742231b10e8888abcd99yyyzzz85a5',
    standard   => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    whpk       => $pair->{public},
    dingtalk   => 'SEC0123456789abcdef0123456789abcdef',
    hmac       => 'generic-hmac-secret',
);

for my $k (keys %secret) {
    EBTest::write_file("$dir/$k.key", "$secret{$k}\n");
}
$ENV{EB_TEST_SLACK_SECRET} = $secret{slack};

my $redis = EBTest::Redis->start;

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<"EOF");
    eventbridge_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        client_body_buffer_size 1k;

        location /github {
            eventbridge_source s.github bus=sig;
            eventbridge_signature github key=file:$dir/github.key;
        }
        location /github-rotation {
            eventbridge_source s.github bus=sig;
            eventbridge_signature github key=file:$dir/github_old.key
                                  key=file:$dir/github.key;
        }
        location /gitlab {
            eventbridge_source s.gitlab bus=sig;
            eventbridge_signature gitlab key=file:$dir/gitlab1.key
                                  key=file:$dir/gitlab2.key;
        }
        location /stripe {
            eventbridge_source s.stripe bus=sig;
            eventbridge_signature stripe key=file:$dir/stripe1.key
                                  key=file:$dir/stripe2.key;
        }
        location /shopify {
            eventbridge_source s.shopify bus=sig;
            eventbridge_signature shopify key=file:$dir/shopify.key;
        }
        location /slack {
            eventbridge_source s.slack bus=sig;
            eventbridge_signature slack key=env:EB_TEST_SLACK_SECRET;
        }
        location /standard {
            eventbridge_source s.standard bus=sig;
            eventbridge_signature standard key=file:$dir/standard.key
                                  key=file:$dir/whpk.key;
        }
        location /dingtalk {
            eventbridge_source s.dingtalk bus=sig;
            eventbridge_signature dingtalk key=file:$dir/dingtalk.key;
        }
        location /hmac {
            eventbridge_source s.hmac bus=sig;
            eventbridge_signature hmac key=file:$dir/hmac.key
                header=X-Signature algorithm=sha512 encoding=base64
                prefix=sha512= timestamp=X-Timestamp
                "signed=\$timestamp.\$body" tolerance=1m;
        }
        location /status { eventbridge_status; }
    }
EOF
$ngx->start;
my $port = $ngx->port;

# node t/node/sign.mjs: the headers a provider sends
sub sign {
    my (%o) = @_;
    # bodies are UTF-8 bytes; node gets them as text and signs UTF-8
    $o{body} = Encode::decode_utf8($o{body}) if defined $o{body};
    my $json = JSON::PP->new->utf8->canonical->encode(\%o);
    open my $fh, '-|', 'node', "$NODE_DIR/sign.mjs", $json
        or die "node: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    my $h = EBTest::json_decode($out // '');
    die "sign.mjs $json: no answer" unless ref $h eq 'HASH';
    return $h;
}

sub xlen { my $n = $redis->xlen($KEY); return ref $n ? 0 : $n // 0 }

sub last_event {
    my $r = $redis->cmd('XREVRANGE', $KEY, '+', '-', 'COUNT', 1);
    return unless ref $r eq 'ARRAY' && @$r;
    my %f = @{ $r->[0][1] };
    return EBTest::json_decode($f{event});
}

sub post {
    my ($path, $body, $h) = @_;
    return EBTest::http(port => $port, path => $path, body => $body,
                        headers => ['Content-Type' => 'application/json',
                                    %{ $h // {} }]);
}

# the raw body has blanks a compaction would remove: a check on anything
# but the raw bytes fails
my $BODY = qq({"action": "opened",  "n": [1, 2, 3], "s": "caf\x{e9}"});
utf8::encode($BODY);
my $OTHER = qq({"action": "closed",  "n": [1, 2, 3], "s": "caf\x{e9}"});
utf8::encode($OTHER);

sub taken {
    my ($name, $path, $body, $h) = @_;
    my $before = xlen();
    my $r = post($path, $body, $h);
    subtest "$name -> 200" => sub {
        is($r->{status}, 200, 'status') or diag $r->{raw};
        is(xlen(), $before + 1, 'one event appended');
        my $ev = last_event();
        is($ev && $ev->{id}, $r->{json} && $r->{json}{eventId},
           'stored event has the answered id');
    };
    return $r;
}

# refusals sent, by metrics label
my %refusals;
my %label = ('missing header' => 'missing_header',
             'malformed header' => 'malformed_header',
             'timestamp outside tolerance (too old)' => 'timestamp_too_old',
             'timestamp outside tolerance (in the future)'
                 => 'timestamp_in_future',
             'bad signature' => 'bad_signature');

sub refused {
    my ($name, $path, $body, $h, $check) = @_;
    $refusals{ $label{$check} }++;
    my $before = xlen();
    my $r = post($path, $body, $h);
    subtest "$name -> 401 ($check)" => sub {
        is($r->{status}, 401, 'status') or diag $r->{raw};
        my $j = $r->{json};
        is(ref $j, 'HASH', 'JSON body') or return;
        is_deeply([sort keys %$j], ['errorCode', 'errorMessage'],
                  'exactly errorCode and errorMessage');
        is($j->{errorCode}, 'InvalidSignature', 'errorCode');
        like($j->{errorMessage}, qr/^signature check failed: \Q$check\E/,
             'the message names the check') or diag $j->{errorMessage};
        is(xlen(), $before, 'nothing appended');
    };
    return $r;
}

my $now = time;
my $m0 = $ngx->metrics;

# --- GitHub ------------------------------------------------------------------

{
    my $h = sign(scheme => 'github', secrets => [$secret{github}],
                 body => $BODY);
    taken('github: good signature', '/github', $BODY, $h);
    my $ev = last_event();
    is($ev && $ev->{data}{body}{action}, 'opened', 'github: event stored');

    refused('github: tampered body', '/github', $OTHER, $h, 'bad signature');
    refused('github: wrong key', '/github', $BODY,
            sign(scheme => 'github', secrets => ['not the secret'],
                 body => $BODY), 'bad signature');
    refused('github: missing header', '/github', $BODY, {},
            'missing header');
    refused('github: malformed header (no prefix)', '/github', $BODY,
            { 'X-Hub-Signature-256' => 'deadbeef' }, 'malformed header');
    refused('github: malformed header (not hex)', '/github', $BODY,
            { 'X-Hub-Signature-256' => 'sha256=' . 'zz' x 32 },
            'malformed header');
    my $before = xlen();
    my $r = EBTest::http(port => $port, path => '/github', body => $BODY,
                         headers => [%$h, %$h]);
    $refusals{malformed_header}++;
    is($r->{status}, 401, 'github: the header twice -> 401');
    like($r->{json} && $r->{json}{errorMessage} // '',
         qr/malformed header: a signature header is repeated/,
         'github: ... as a malformed header');
    is(xlen(), $before, 'github: ... nothing appended');

    # rotation: either key; two signatures in one header
    taken('github rotation: new key', '/github-rotation', $BODY, $h);
    taken('github rotation: old key', '/github-rotation', $BODY,
          sign(scheme => 'github', secrets => [$secret{github_old}],
               body => $BODY));
    taken('github: unknown and current signature in one header',
          '/github', $BODY,
          sign(scheme => 'github', secrets => ['other', $secret{github}],
               body => $BODY));

    # a body spooled to a temp file (over client_body_buffer_size)
    my $big = '{"blob": "' . ('x' x 20000) . '"}';
    taken('github: 20 KB body read back from a temp file', '/github', $big,
          sign(scheme => 'github', secrets => [$secret{github}],
               body => $big));
}

# --- GitLab ------------------------------------------------------------------

{
    taken('gitlab: first token', '/gitlab', $BODY,
          sign(scheme => 'gitlab', secrets => [$secret{gitlab1}]));
    taken('gitlab: second token', '/gitlab', $BODY,
          sign(scheme => 'gitlab', secrets => [$secret{gitlab2}]));
    refused('gitlab: wrong token', '/gitlab', $BODY,
            { 'X-Gitlab-Token' => 'glpat-token-on' }, 'bad signature');
    refused('gitlab: missing header', '/gitlab', $BODY, {},
            'missing header');
}

# --- Stripe ------------------------------------------------------------------

{
    my $h = sign(scheme => 'stripe', secrets => [$secret{stripe1}],
                 body => $BODY, ts => $now);
    taken('stripe: good signature', '/stripe', $BODY, $h);
    taken('stripe: second key', '/stripe', $BODY,
          sign(scheme => 'stripe', secrets => [$secret{stripe2}],
               body => $BODY, ts => $now));
    taken('stripe: two v1 in one header, second good', '/stripe', $BODY,
          sign(scheme => 'stripe', secrets => ['whsec_other',
                                               $secret{stripe2}],
               body => $BODY, ts => $now));
    refused('stripe: tampered body', '/stripe', $OTHER, $h, 'bad signature');
    refused('stripe: wrong key', '/stripe', $BODY,
            sign(scheme => 'stripe', secrets => ['whsec_wrong'],
                 body => $BODY, ts => $now), 'bad signature');
    refused('stripe: 10 minutes old', '/stripe', $BODY,
            sign(scheme => 'stripe', secrets => [$secret{stripe1}],
                 body => $BODY, ts => $now - 600),
            'timestamp outside tolerance (too old)');
    refused('stripe: 10 minutes ahead', '/stripe', $BODY,
            sign(scheme => 'stripe', secrets => [$secret{stripe1}],
                 body => $BODY, ts => $now + 600),
            'timestamp outside tolerance (in the future)');
    refused('stripe: missing header', '/stripe', $BODY, {},
            'missing header');
    (my $no_t = $h->{'Stripe-Signature'}) =~ s/^t=\d+,//;
    refused('stripe: malformed header (no t=)', '/stripe', $BODY,
            { 'Stripe-Signature' => $no_t }, 'malformed header');
}

# --- Shopify -----------------------------------------------------------------

{
    my $h = sign(scheme => 'shopify', secrets => [$secret{shopify}],
                 body => $BODY);
    taken('shopify: good signature', '/shopify', $BODY, $h);
    refused('shopify: tampered body', '/shopify', $OTHER, $h,
            'bad signature');
    refused('shopify: wrong key', '/shopify', $BODY,
            sign(scheme => 'shopify', secrets => ['shpss_wrong'],
                 body => $BODY), 'bad signature');
    refused('shopify: missing header', '/shopify', $BODY, {},
            'missing header');
    refused('shopify: malformed header (not base64)', '/shopify', $BODY,
            { 'X-Shopify-Hmac-Sha256' => 'not*base64' }, 'malformed header');
}

# --- Slack (key from the environment) ---------------------------------------

{
    my $h = sign(scheme => 'slack', secrets => [$secret{slack}],
                 body => $BODY, ts => $now);
    taken('slack: good signature', '/slack', $BODY, $h);
    refused('slack: tampered body', '/slack', $OTHER, $h, 'bad signature');
    refused('slack: wrong key', '/slack', $BODY,
            sign(scheme => 'slack', secrets => ['wrong'], body => $BODY,
                 ts => $now), 'bad signature');
    refused('slack: 10 minutes old', '/slack', $BODY,
            sign(scheme => 'slack', secrets => [$secret{slack}],
                 body => $BODY, ts => $now - 600),
            'timestamp outside tolerance (too old)');
    refused('slack: 10 minutes ahead', '/slack', $BODY,
            sign(scheme => 'slack', secrets => [$secret{slack}],
                 body => $BODY, ts => $now + 600),
            'timestamp outside tolerance (in the future)');
    my %no_ts = %$h;
    delete $no_ts{'X-Slack-Request-Timestamp'};
    my $r = refused('slack: missing timestamp header', '/slack', $BODY,
                    \%no_ts, 'missing header');
    like($r->{json}{errorMessage} // '', qr/x-slack-request-timestamp/,
         'slack: the message names the timestamp header');
    refused('slack: malformed timestamp', '/slack', $BODY,
            { %$h, 'X-Slack-Request-Timestamp' => 'yesterday' },
            'malformed header');
}

# --- Standard Webhooks --------------------------------------------------------

{
    my $h = sign(scheme => 'standard', secrets => [$secret{standard}],
                 body => $BODY, ts => $now);
    taken('standard: v1', '/standard', $BODY, $h);
    taken('standard: v1a (Ed25519)', '/standard', $BODY,
          sign(scheme => 'standard', keys => [$pair->{private}],
               body => $BODY, ts => $now));
    taken('standard: unknown v1 then good v1 in one header', '/standard',
          $BODY, sign(scheme => 'standard',
                      secrets => ['whsec_b3RoZXIgc2VjcmV0',
                                  $secret{standard}],
                      body => $BODY, ts => $now));
    my $other = sign(scheme => 'keygen');
    refused('standard: v1a by another key', '/standard', $BODY,
            sign(scheme => 'standard', keys => [$other->{private}],
                 body => $BODY, ts => $now), 'bad signature');
    refused('standard: tampered body', '/standard', $OTHER, $h,
            'bad signature');
    refused('standard: another webhook-id', '/standard', $BODY,
            { %$h, 'webhook-id' => 'msg_replayed' }, 'bad signature');
    refused('standard: 10 minutes old', '/standard', $BODY,
            sign(scheme => 'standard', secrets => [$secret{standard}],
                 body => $BODY, ts => $now - 600),
            'timestamp outside tolerance (too old)');
    refused('standard: 10 minutes ahead', '/standard', $BODY,
            sign(scheme => 'standard', secrets => [$secret{standard}],
                 body => $BODY, ts => $now + 600),
            'timestamp outside tolerance (in the future)');
    my %no_id = %$h;
    delete $no_id{'webhook-id'};
    refused('standard: missing webhook-id', '/standard', $BODY, \%no_id,
            'missing header');
    refused('standard: malformed signature (no version)', '/standard',
            $BODY, { %$h, 'webhook-signature' => 'abc' },
            'malformed header');
}

# --- DingTalk ----------------------------------------------------------------

{
    my $ms = int($now * 1000);
    my $h = sign(scheme => 'dingtalk', secrets => [$secret{dingtalk}],
                 ts => $ms);
    taken('dingtalk: good sign', '/dingtalk', $BODY, $h);
    refused('dingtalk: wrong key', '/dingtalk', $BODY,
            sign(scheme => 'dingtalk', secrets => ['SECwrong'], ts => $ms),
            'bad signature');
    taken('dingtalk: 50 minutes old (tolerance 1 h)', '/dingtalk', $BODY,
          sign(scheme => 'dingtalk', secrets => [$secret{dingtalk}],
               ts => $ms - 3000 * 1000));
    refused('dingtalk: 2 hours old', '/dingtalk', $BODY,
            sign(scheme => 'dingtalk', secrets => [$secret{dingtalk}],
                 ts => $ms - 7200 * 1000),
            'timestamp outside tolerance (too old)');
    refused('dingtalk: 2 hours ahead', '/dingtalk', $BODY,
            sign(scheme => 'dingtalk', secrets => [$secret{dingtalk}],
                 ts => $ms + 7200 * 1000),
            'timestamp outside tolerance (in the future)');
    refused('dingtalk: seconds, not milliseconds', '/dingtalk', $BODY,
            sign(scheme => 'dingtalk', secrets => [$secret{dingtalk}],
                 ts => $now),
            'timestamp outside tolerance (too old)');
    refused('dingtalk: missing sign', '/dingtalk', $BODY,
            { timestamp => $ms }, 'missing header');
}

# --- generic hmac (the sender here: Perl's Digest::SHA) ----------------------

{
    my $hm = sub {
        my ($ts, $body, $key) = @_;
        my $b64 = hmac_sha512_base64("$ts.$body", $key // $secret{hmac});
        $b64 .= '=' while length($b64) % 4;
        return { 'X-Timestamp' => $ts, 'X-Signature' => "sha512=$b64" };
    };
    taken('hmac: sha512, base64, prefix, timestamp', '/hmac', $BODY,
          $hm->($now, $BODY));
    refused('hmac: tampered body', '/hmac', $OTHER, $hm->($now, $BODY),
            'bad signature');
    refused('hmac: wrong key', '/hmac', $BODY, $hm->($now, $BODY, 'x'),
            'bad signature');
    refused('hmac: 2 minutes old (tolerance 1m)', '/hmac', $BODY,
            $hm->($now - 120, $BODY),
            'timestamp outside tolerance (too old)');
}

# --- metrics -----------------------------------------------------------------

{
    my $m = $ngx->metrics;
    my $d = sub {
        my ($k) = @_;
        return ($m->{$k} // 0) - ($m0->{$k} // 0);
    };
    my $f = 'eventbridge_signature_failures_total';
    my $total = 0;
    for my $reason (sort values %label) {
        is($d->("$f\{reason=\"$reason\"}"), $refusals{$reason},
           "metrics: $refusals{$reason} $reason failures");
        $total += $refusals{$reason};
    }
    is($d->('eventbridge_events_rejected_total{reason="signature"}'), $total,
       'metrics: rejected with reason signature, all of them');
}

# --- no secret in the log ----------------------------------------------------

{
    my $log = $ngx->error_log;
    my @leaked = grep { index($log, $secret{$_}) >= 0 }
                 grep { $_ ne 'whpk' } keys %secret;
    is_deeply(\@leaked, [], 'no secret in the error log');
    like($log, qr/signature: bad signature/, 'failures logged at info');
}

$ngx->finish;

# --- nginx -t ----------------------------------------------------------------

sub conf_with {
    my ($sig) = @_;
    return <<"EOF";
    eventbridge_redis 127.0.0.1:6379;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook {
            eventbridge_source s.test bus=test;
            $sig
        }
    }
EOF
}

sub bad_conf {
    my ($name, $re, $conf) = @_;
    my $t = EBTest::Nginx->new(http => $conf);
    my ($rc, $out) = $t->test_conf;
    my $file = $t->dir . '/nginx.conf';
    subtest "nginx -t: $name" => sub {
        isnt($rc, 0, 'fails');
        like($out, qr/\[emerg\]/, 'an [emerg] message');
        like($out, $re, 'names the problem') or diag $out;
        like($out, qr/ in \Q$file\E:\d+/, 'names the file and line')
            or diag $out;
        my @leaked = grep { index($out, $_) >= 0 } values %secret;
        is_deeply(\@leaked, [], 'no secret in the message');
    };
}

bad_conf('missing key file',
    qr/"eventbridge_signature" directive: cannot open key file "\Q$dir\E\/nope\.key"/,
    conf_with("eventbridge_signature github key=file:$dir/nope.key;"));
bad_conf('unknown preset',
    qr/"eventbridge_signature" directive: unknown scheme "gitlub"/,
    conf_with("eventbridge_signature gitlub key=file:$dir/github.key;"));
bad_conf('bad tolerance',
    qr/"eventbridge_signature" directive: invalid "tolerance=5 minutes"/,
    conf_with("eventbridge_signature stripe key=file:$dir/stripe1.key "
              . '"tolerance=5 minutes";'));
bad_conf('environment variable not set',
    qr/"eventbridge_signature" directive: environment variable "EB_TEST_UNSET" is not set/,
    conf_with('eventbridge_signature slack key=env:EB_TEST_UNSET;'));
bad_conf('inline secret',
    qr/"eventbridge_signature" directive: invalid "key=": use "key=file:PATH" or "key=env:NAME"/,
    conf_with('eventbridge_signature github key=s3cret;'));
bad_conf('no key',
    qr/"eventbridge_signature" directive: needs at least one "key=/,
    conf_with('eventbridge_signature github;'));
bad_conf('hmac without header=',
    qr/"eventbridge_signature" directive: "hmac" needs "header=NAME"/,
    conf_with("eventbridge_signature hmac key=file:$dir/hmac.key;"));
bad_conf('unknown parameter',
    qr/"eventbridge_signature" directive: unknown parameter "colour=blue"/,
    conf_with("eventbridge_signature github key=file:$dir/github.key "
              . 'colour=blue;'));
bad_conf('bad algorithm',
    qr/"eventbridge_signature" directive: invalid "algorithm=md5"/,
    conf_with("eventbridge_signature hmac header=x key=file:$dir/hmac.key "
              . 'algorithm=md5;'));
bad_conf('a Standard Webhooks key that is not base64',
    qr/"eventbridge_signature" directive: key file "\Q$dir\E\/hmac\.key": a Standard Webhooks secret/,
    conf_with("eventbridge_signature standard key=file:$dir/hmac.key;"));
bad_conf('duplicate',
    qr/"eventbridge_signature" directive is duplicate/,
    conf_with("eventbridge_signature github key=file:$dir/github.key;\n"
              . "eventbridge_signature github key=file:$dir/github.key;"));
bad_conf('on a PutEvents location',
    qr/"eventbridge_signature" applies to "eventbridge_source" locations/,
    <<"EOF");
    eventbridge_redis 127.0.0.1:6379;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /put {
            eventbridge_put_events bus=test;
            eventbridge_signature github key=file:$dir/github.key;
        }
    }
EOF

done_testing;
