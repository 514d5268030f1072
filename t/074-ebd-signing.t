#!/usr/bin/perl
# ebd's outbound signing ("signing" of http and cloudevents targets) end
# to end: events POSTed into a real nginx, delivered by a real ebd to a
# Node.js receiver (t/node/receive.mjs) that checks every request as a
# consumer would: Standard Webhooks v1 with the standardwebhooks npm
# library, v1a (which that library does not verify) and the generic HMAC
# with node's crypto. Covered: v1 with one secret; two secrets (key
# rotation: a receiver that knows only the new one and one that knows
# only the old one both accept); v1a from a whsk_ seed and from a PEM
# file; v1 and v1a together; a webhook-id that stays the same when an
# attempt answered 500 is retried (and is the Idempotency-Key), with a
# valid signature on each attempt; an event id with dots; the generic
# HMAC (sha256, hex, prefix, timestamp header; sha512, base64) on http
# and cloudevents targets; secrets inline, from the environment and from
# files, none of them in ebd's log; configuration errors (ebd -t and ebd
# at start refuse, naming the target and the field; a SIGHUP that would
# break a secret is refused and the running configuration stays); and a
# traceparent or tracestate in a target's "headers" sent once, in place
# of ebd's.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes qw(sleep time);
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use EBTest qw(wait_for);
use EBTest::NodePeer;

my $NODE_DIR = "$FindBin::Bin/node";

plan skip_all => 'ebd not built' unless -x EBTest::Ebd::binary();
plan skip_all => 'node is not installed' unless `node --version 2>/dev/null`;
plan skip_all => 't/node/node_modules missing (make node-deps)'
    unless -d "$NODE_DIR/node_modules/standardwebhooks";
plan skip_all => 'openssl is not installed' unless `openssl version 2>/dev/null`;

my $JSON = JSON::PP->new->utf8->canonical;
my $DIR = tempdir('eb-sign-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# --- keys ----------------------------------------------------------------------

sub b64 { encode_base64($_[0], '') }
sub random_bytes {
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read $fh, my $b, $_[0];
    return $b;
}

# an Ed25519 pair made by the openssl CLI: PEM, the 32-byte seed (the end
# of the PKCS#8 DER) and the raw public key (the end of the SPKI DER)
sub ed25519 {
    my ($name) = @_;
    my $pem = "$DIR/$name.pem";
    system('openssl', 'genpkey', '-algorithm', 'ed25519', '-out', $pem) == 0
        or die "openssl genpkey failed";
    my $der = `openssl pkey -in '$pem' -outform DER`;
    my $pub = `openssl pkey -in '$pem' -pubout -outform DER`;
    die "openssl pkey failed" unless length $der == 48 && length $pub == 44;
    return { pem => $pem, whsk => 'whsk_' . b64(substr $der, -32),
             whpk => 'whpk_' . b64(substr $pub, -32) };
}

my %S = (
    one    => 'whsec_' . b64(random_bytes(32)),
    new    => 'whsec_' . b64(random_bytes(24)),
    old    => 'whsec_' . b64(random_bytes(64)),
    mixed  => 'whsec_' . b64(random_bytes(32)),
    hmac   => 'hmac-Secret-' . unpack('H*', random_bytes(8)),
    hmac2  => 'hmac2-Secret-' . unpack('H*', random_bytes(8)),
);
my $seed = ed25519('seed');
my $pemk = ed25519('pem');
EBTest::write_file("$DIR/old.secret", "$S{old}\n");
EBTest::write_file("$DIR/hmac2.secret", $S{hmac2});

my %ENV_SECRETS = (EB_T_NEW => $S{new}, EB_T_SEED => $seed->{whsk},
                   EB_T_HMAC => $S{hmac});

# --- the receiver --------------------------------------------------------------

my $OWN_TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
my $EV_TP  = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

my %paths = (
    '/v1'    => { checks => [ { name => 'v1', scheme => 'v1', secret => $S{one} } ] },
    '/rot'   => { checks => [ { name => 'new', scheme => 'v1', secret => $S{new} },
                              { name => 'old', scheme => 'v1', secret => $S{old} } ] },
    '/seed'  => { checks => [ { name => 'v1a', scheme => 'v1a', public => $seed->{whpk} },
                              { name => 'v1', scheme => 'v1', secret => $S{mixed} } ] },
    '/pem'   => { checks => [ { name => 'v1a', scheme => 'v1a', public => $pemk->{whpk} } ] },
    '/retry' => { answers => [ 500, 200 ],
                  checks => [ { name => 'v1', scheme => 'v1', secret => $S{one} } ] },
    '/dots'  => { checks => [ { name => 'v1', scheme => 'v1', secret => $S{one} } ] },
    '/hmac'  => { checks => [ { name => 'hmac', scheme => 'hmac', header => 'X-Signature',
                                secret => $S{hmac}, prefix => 'sha256=',
                                timestamp_header => 'X-Timestamp' } ] },
    '/hmac2' => { checks => [ { name => 'hmac', scheme => 'hmac', header => 'X-Sig',
                                secret => $S{hmac2}, algorithm => 'sha512',
                                encoding => 'base64' } ] },
    '/tp'    => {},
    '/ts'    => {},
);

my $recv = EBTest::NodePeer->start('receive.mjs', paths => \%paths);

# --- the configuration -----------------------------------------------------------

my $retry = { strategy => 'backoff', attempts => 3, interval => '50ms',
              max_interval => '100ms' };

sub on_case { +{ data => { body => { case => [ $_[0] ] } } } }
sub rule { +{ pattern => $_[0], targets => [ map { +{ target => $_ } } @_[1 .. $#_] ] } }

my $cfg = {
    targets => {
        v1    => { type => 'http', url => $recv->url('/v1'),
                   signing => { scheme => 'standard', secret => $S{one} } },
        rot   => { type => 'http', url => $recv->url('/rot'),
                   signing => { scheme => 'standard', secret_env => 'EB_T_NEW',
                                secret_file => [ "$DIR/old.secret" ] } },
        seed  => { type => 'cloudevents', url => $recv->url('/seed'),
                   signing => { scheme => 'standard', secret => [ $S{mixed} ],
                                secret_env => [ 'EB_T_SEED' ] } },
        pem   => { type => 'cloudevents', url => $recv->url('/pem'),
                   mode => 'structured',
                   signing => { scheme => 'standard', secret_file => $pemk->{pem} } },
        retry => { type => 'http', url => $recv->url('/retry'), retry => $retry,
                   signing => { scheme => 'standard', secret => $S{one} } },
        dots  => { type => 'http', url => $recv->url('/dots'),
                   signing => { scheme => 'standard', secret => $S{one} } },
        hmac  => { type => 'http', url => $recv->url('/hmac'), method => 'PUT',
                   signing => { scheme => 'hmac', header => 'X-Signature',
                                algorithm => 'sha256', encoding => 'hex',
                                prefix => 'sha256=', timestamp_header => 'X-Timestamp',
                                secret_env => 'EB_T_HMAC' } },
        hmac2 => { type => 'cloudevents', url => $recv->url('/hmac2'),
                   signing => { scheme => 'hmac', header => 'X-Sig',
                                algorithm => 'sha512', encoding => 'base64',
                                secret_file => "$DIR/hmac2.secret" } },
        tp    => { type => 'http', url => $recv->url('/tp'),
                   headers => { traceparent => $OWN_TP, 'X-Other' => 'o' } },
        ts    => { type => 'http', url => $recv->url('/ts'),
                   headers => { TraceState => 'mine=1' } },
    },
    buses => {
        t => { rules => {
            v1    => rule(on_case('v1'), 'v1'),
            rot   => rule(on_case('rot'), 'rot'),
            ed    => rule(on_case('ed'), 'seed', 'pem'),
            retry => rule(on_case('retry'), 'retry'),
            dots  => rule({ type => [ 'com.example.dots' ] }, 'dots'),
            hmac  => rule(on_case('hmac'), 'hmac', 'hmac2'),
            trace => rule(on_case('trace'), 'tp', 'ts'),
        } },
    },
};

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /t   { eventbridge_source t.src bus=t; }
        location /put { eventbridge_put_events bus=t; }
    }
EOF
my $cfgfile = $ngx->dir . '/buses.json';
EBTest::write_file($cfgfile, $JSON->encode($cfg));
{
    my ($rc, $out) = $ngx->test_conf;
    is($rc, 0, 'nginx -t accepts targets with signing') or diag $out;
}
$ngx->start;

# ebd -t: (exit code, output), with the environment given
sub ebd_t {
    my ($file, %env) = @_;
    local @ENV{keys %env} = values %env;
    my $out = `'${\ EBTest::Ebd::binary()}' -t -c '$file' 2>&1`;
    return ($? >> 8, $out);
}

{
    my ($rc, $out) = ebd_t($cfgfile, %ENV_SECRETS);
    is($rc, 0, 'ebd -t accepts the configuration') or diag $out;
    like($out, qr/test is successful/, 'ebd -t says so');
}

my $ebd = EBTest::Ebd->start(config => $cfgfile, redis => $redis,
                             name => 'ebd-074', level => 'debug',
                             env => \%ENV_SECRETS);
ok($ebd->alive && $ebd->log =~ /ebd: ready/, 'ebd is ready')
    or BAIL_OUT("ebd did not start:\n" . $ebd->log);

# --- helpers ---------------------------------------------------------------------

sub event {
    my (%body) = @_;
    my $r = $ngx->request(method => 'POST', path => '/t',
                          headers => [ 'Content-Type' => 'application/json',
                                       @{ delete $body{headers} // [] } ],
                          body => $JSON->encode(\%body));
    is($r->{status}, 200, "event $body{case} accepted") or diag $r->{raw};
    return $r->{json}{eventId} // '';
}

sub wait_reqs {
    my ($path, $n) = @_;
    wait_for(sub { @{ $recv->requests($path) } >= $n }, 10);
    return $recv->requests($path);
}

# every check of every request passed
sub all_verified {
    my ($reqs, $what) = @_;
    my @bad = map { my $q = $_; map { "$q->{path} #$q->{n} $_: $q->{checks}{$_}" }
                    grep { $q->{checks}{$_} ne 'ok' } sort keys %{ $q->{checks} } } @$reqs;
    ok(@$reqs && !@bad, "$what: the receiver verified every request")
        or diag join "\n", @bad, $JSON->encode($reqs);
}

# a header's lines as sent, by name (case-insensitive)
sub raw_values {
    my ($q, $name) = @_;
    return map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $q->{raw} };
}

# =============================================================================
# 1. Standard Webhooks v1, one secret
# =============================================================================

{
    my $id = event(case => 'v1', n => 1, text => "caf\x{e9} \"quoted\"");
    my $q = wait_reqs('/v1', 1);
    is(scalar @$q, 1, 'v1: one request');
    all_verified($q, 'v1: standardwebhooks Webhook.verify');
    my $h = $q->[0]{headers};
    is($h->{'webhook-id'}, "$id/v1/v1", 'v1: webhook-id is EVENT-ID/RULE/TARGET');
    is($h->{'webhook-id'}, $h->{'idempotency-key'}, 'v1: the same as Idempotency-Key');
    like($h->{'webhook-timestamp'}, qr/^\d+$/, 'v1: webhook-timestamp in seconds');
    ok(abs($h->{'webhook-timestamp'} - time) <= 5, 'v1: the time of sending');
    like($h->{'webhook-signature'}, qr{^v1,[A-Za-z0-9+/]{43}=$}, 'v1: one v1 signature');
    is(scalar(raw_values($q->[0], 'webhook-signature')), 1, 'v1: one webhook-signature header');
}

# =============================================================================
# 2. key rotation: two secrets, two signatures in one header
# =============================================================================

{
    event(case => 'rot');
    my $q = wait_reqs('/rot', 1);
    is(scalar @$q, 1, 'rotation: one request');
    is($q->[0]{checks}{new}, 'ok', 'rotation: a receiver knowing only the new secret accepts');
    is($q->[0]{checks}{old}, 'ok', 'rotation: a receiver knowing only the old secret accepts');
    my @sigs = split / /, $q->[0]{headers}{'webhook-signature'} // '';
    is(scalar @sigs, 2, 'rotation: two space-separated signatures');
    is(scalar(grep { /^v1,/ } @sigs), 2, 'rotation: both v1');
}

# =============================================================================
# 3. v1a (Ed25519): a whsk_ seed with a v1 secret beside it; a PEM file
# =============================================================================

{
    event(case => 'ed', n => 3);
    my $s = wait_reqs('/seed', 1);
    my $p = wait_reqs('/pem', 1);
    is(scalar @$s, 1, 'v1a: the cloudevents binary target got one request');
    is(scalar @$p, 1, 'v1a: the structured one too');
    all_verified($s, 'v1a (whsk_ seed) + v1');
    all_verified($p, 'v1a (PEM file), structured');
    my @sigs = split / /, $s->[0]{headers}{'webhook-signature'} // '';
    is_deeply([ map { (split /,/)[0] } @sigs ], [ 'v1', 'v1a' ],
              'v1a: v1 and v1a in the order of the secrets');
    like($sigs[1] // '', qr{^v1a,[A-Za-z0-9+/]{86}==$}, 'v1a: a 64-byte signature');
    is($s->[0]{headers}{'webhook-id'}, $s->[0]{headers}{'ce-id'} . '/ed/seed',
       'v1a: webhook-id is the CloudEvent id, the rule and the target');
    isnt($p->[0]{headers}{'webhook-id'}, $s->[0]{headers}{'webhook-id'},
         'v1a: one webhook-id per target');
    like($p->[0]{headers}{'content-type'}, qr{^application/cloudevents\+json},
         'v1a: structured mode signs the structured body');
}

# =============================================================================
# 4. a retry: the same webhook-id, signed again
# =============================================================================

{
    my $id = event(case => 'retry');
    my $q = wait_reqs('/retry', 2);
    is(scalar @$q, 2, 'retry: answered 500, then tried again');
    is($q->[0]{status}, 500, 'retry: the first attempt got 500');
    is($q->[1]{status}, 200, 'retry: the second 200');
    all_verified($q, 'retry: both attempts');
    is($q->[1]{headers}{'webhook-id'}, $q->[0]{headers}{'webhook-id'},
       'retry: the same webhook-id');
    is($q->[1]{headers}{'webhook-id'}, "$id/retry/retry", 'retry: the delivery id');
    ok($q->[1]{headers}{'webhook-timestamp'} >= $q->[0]{headers}{'webhook-timestamp'},
       'retry: the second attempt has its own timestamp');
}

# =============================================================================
# 5. an event id with dots: not a dot in webhook-id (it is part of the
#    signed "{id}.{ts}.{body}")
# =============================================================================

{
    my $ev = { specversion => '1.0', id => 'order.42.created', source => '/s',
               type => 'com.example.dots', data => { a => 1 } };
    my $r = $ngx->request(method => 'POST', path => '/put',
                          headers => [ 'Content-Type' => 'application/cloudevents+json' ],
                          body => $JSON->encode($ev));
    is($r->{status}, 200, 'dots: PutEvents accepted') or diag $r->{raw};
    my $q = wait_reqs('/dots', 1);
    is($q->[0]{headers}{'webhook-id'}, 'order%2E42%2Ecreated/dots/dots', 'dots: dots percent-encoded');
    is($q->[0]{headers}{'idempotency-key'}, 'order.42.created/dots/dots', 'dots: Idempotency-Key as before');
    all_verified($q, 'dots');
}

# =============================================================================
# 6. the generic HMAC: http (PUT, timestamp header), cloudevents (sha512,
#    base64)
# =============================================================================

{
    event(case => 'hmac', n => 6);
    my $a = wait_reqs('/hmac', 1);
    my $b = wait_reqs('/hmac2', 1);
    all_verified($a, 'hmac: sha256, hex, prefix, "{ts}.{body}"');
    all_verified($b, 'hmac: sha512, base64, the body');
    like($a->[0]{headers}{'x-signature'} // '', qr/^sha256=[0-9a-f]{64}$/,
         'hmac: sha256= and lower-case hex');
    like($a->[0]{headers}{'x-timestamp'} // '', qr/^\d+$/, 'hmac: X-Timestamp');
    like($b->[0]{headers}{'x-sig'} // '', qr{^[A-Za-z0-9+/]{86}==$}, 'hmac: 64 bytes, base64');
    ok(!defined $b->[0]{headers}{'webhook-signature'}, 'hmac: no Standard Webhooks headers');
}

# =============================================================================
# 7. traceparent / tracestate in "headers": sent once, the target's
# =============================================================================

{
    event(case => 'trace', headers => [ traceparent => $EV_TP,
                                        tracestate => 'congo=t61rcWkgMzE' ]);
    my $tp = wait_reqs('/tp', 1);
    my $ts = wait_reqs('/ts', 1);
    is_deeply([ raw_values($tp->[0], 'traceparent') ], [ $OWN_TP ],
              'trace: a configured traceparent is sent once, in place of the event\'s');
    is_deeply([ raw_values($tp->[0], 'tracestate') ], [],
              'trace: and the event\'s tracestate is not sent with it');
    is_deeply([ raw_values($tp->[0], 'x-other') ], [ 'o' ], 'trace: other headers as before');
    is_deeply([ raw_values($ts->[0], 'traceparent') ], [ $EV_TP ],
              'trace: the event\'s traceparent when only tracestate is configured');
    is_deeply([ raw_values($ts->[0], 'tracestate') ], [ 'mine=1' ],
              'trace: a configured tracestate is sent once, in place of the event\'s');
}

# =============================================================================
# 8. configuration errors: ebd -t, ebd at start, SIGHUP
# =============================================================================

sub bad_config {
    my ($name, $signing, %more) = @_;
    my $c = { targets => { $name => { type => 'http', url => $recv->url('/x'),
                                      signing => $signing, %more } },
              buses => { t => { rules => { r => rule(on_case('x'), $name) } } } };
    my $file = "$DIR/bad-$name.json";
    EBTest::write_file($file, $JSON->encode($c));
    return $file;
}

my $bad_b64 = 'whsec_not*base64*' . 'Secret-xyz';
my @bad = (
    [ 'noenv', { scheme => 'standard', secret_env => [ 'EB_T_NEW', 'EB_T_MISSING' ] },
      qr/targets\.noenv\.signing\.secret_env\[1\]: the environment variable "EB_T_MISSING" is not set/,
      'a missing environment variable' ],
    [ 'b64', { scheme => 'standard', secret => $bad_b64 },
      qr/targets\.b64\.signing\.secret: a Standard Webhooks secret must be "whsec_" and base64/,
      'a secret that is not base64' ],
    [ 'short', { scheme => 'standard', secret => 'whsec_' . b64('0123456789') },
      qr/targets\.short\.signing\.secret: a "whsec_" secret must decode to 24 to 64 bytes, not 10/,
      'a whsec_ secret too short' ],
    [ 'seedlen', { scheme => 'standard', secret_env => 'EB_T_BADSEED' },
      qr/targets\.seedlen\.signing\.secret_env: "EB_T_BADSEED": a "whsk_" key must be the base64 of a 32-byte Ed25519 seed/,
      'a whsk_ key of the wrong length' ],
    [ 'pub', { scheme => 'standard', secret => $seed->{whpk} },
      qr/targets\.pub\.signing\.secret: a "whpk_" key is a public key/,
      'a public key given to sign' ],
    [ 'nofile', { scheme => 'hmac', header => 'X-S', secret_file => "$DIR/none" },
      qr/targets\.nofile\.signing\.secret_file: cannot open "\Q$DIR\E\/none": No such file/,
      'a secret file that is not there' ],
    [ 'shape', { scheme => 'standard', secret => $S{one}, header => 'X-S' },
      qr/targets\.shape\.signing\.header: only with "scheme": "hmac"/,
      'an hmac option with the standard scheme' ],
    [ 'nohdr', { scheme => 'hmac', secret => 'x' },
      qr/targets\.nohdr\.signing: "scheme": "hmac" needs "header"/,
      'hmac without a header' ],
    [ 'dup', { scheme => 'standard', secret => $S{one} },
      qr/targets\.dup\.headers: "Webhook-Signature" is the signature's/,
      'a configured header the signature sets', headers => { 'Webhook-Signature' => 'x' } ],
);

for my $b (@bad) {
    my ($name, $signing, $re, $what, %more) = @$b;
    my $file = bad_config($name, $signing, %more);
    my ($rc, $out) = ebd_t($file, %ENV_SECRETS,
                           EB_T_BADSEED => 'whsk_' . b64(random_bytes(31)));
    is($rc, 1, "ebd -t refuses $what");
    like($out, $re, "ebd -t: $what: the target and field named") or diag $out;
    unlike($out, qr/\Q$_\E/, "ebd -t: $what: no secret in the message")
        for grep { length > 8 } $bad_b64, values %S;
}

{
    # at start: the same message, exit status 1
    my $file = bad_config('start', { scheme => 'standard', secret_env => 'EB_T_MISSING' });
    my $e = EBTest::Ebd->start(config => $file, redis => $redis, name => 'ebd-074-bad');
    ok(wait_for(sub { !$e->alive }, 10), 'start: ebd with a missing secret stops');
    like($e->log, qr/targets\.start\.signing\.secret_env: the environment variable "EB_T_MISSING" is not set/,
         'start: the target and the field named');
    $e->stop;
}

{
    # SIGHUP with a secret file gone: refused, the running configuration stays
    my $c = $JSON->decode($JSON->encode($cfg));
    $c->{targets}{hmac2}{signing}{secret_file} = "$DIR/gone.secret";
    EBTest::write_file($cfgfile, $JSON->encode($c));
    $ebd->reload;
    ok(wait_for(sub { $ebd->log =~ /reload refused.*targets\.hmac2\.signing\.secret_file: cannot open/ }, 10),
       'reload: a missing secret file is refused, naming the target and field');
    EBTest::write_file($cfgfile, $JSON->encode($cfg));
    event(case => 'v1', n => 2);
    my $q = wait_reqs('/v1', 2);
    is(scalar @$q, 2, 'reload: the running configuration still delivers');
    all_verified($q, 'reload: still signed');
}

# =============================================================================
# 9. secrets stay out of the log (debug)
# =============================================================================

{
    my $log = $ebd->log;
    like($log, qr/debug/, 'ebd logged at debug');
    my %all = (%S, seed => $seed->{whsk}, pem => EBTest::slurp($pemk->{pem}) =~ s/-----[^-]+-----|\s//gr);
    unlike($log, qr/\Q$all{$_}\E/, "ebd's log does not contain the secret $_") for sort keys %all;
}

$ebd->finish;
$ngx->finish;
EBTest::cleanup_all();
done_testing;


# The Node.js receiver: t/node/receive.mjs in a process of its own
