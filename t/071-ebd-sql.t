#!/usr/bin/perl
# The `mysql` and `postgresql` targets end to end: a real nginx (the built
# module), a real redis-server, a real ebd, and real, private MariaDB and
# PostgreSQL servers (t/lib/EBTest/MariaDB.pm, Postgres.pm) that the
# targets reach over TCP with a user and a password.
#
# Covered, for both drivers: the seed's walkthrough (a DingTalk
# user_add_org webhook becomes exactly the right user_info row); SQL
# injection attempts, quotes, backslashes, Unicode and control characters
# land as data byte for byte, in a table and columns whose names need
# quoting; missing values and JSON null become NULL, other values their
# text; a value too long for its column and a NOT NULL violation are
# dead-lettered at once while the rest of their batch is inserted; 2,000
# events queued before ebd starts all arrive, in multi-row statements;
# a database killed (MariaDB: SIGKILL) or stopped (PostgreSQL) and started
# again in the middle of a 1,500-event burst loses nothing.
use strict;
use warnings;
use utf8;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file slurp);
use EBTest::MariaDB;
use EBTest::Postgres;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;
plan skip_all => 'MariaDB server not installed' unless EBTest::MariaDB::available();
plan skip_all => 'PostgreSQL server not installed' unless EBTest::Postgres::available();

my $JSON = JSON::PP->new->utf8->canonical;

# forked load clients never outlive the test (and never run its END blocks)
my @children;
END { my $rc = $?; for (@children) { kill 'KILL', $_; waitpid $_, 0 } $? = $rc; }

sub bytes { my $s = $_[0]; utf8::encode($s) if defined $s; return $s }

# --- the servers -------------------------------------------------------------

my $redis = EBTest::Redis->start;
my $my = EBTest::MariaDB->start(database => 'hr');
my $pg = EBTest::Postgres->start(database => 'hr');
my %db = (mysql => $my, postgresql => $pg);

# a lenient server, as many are configured (MySQL 5.6's default): without
# the STRICT_ALL_TABLES ebd adds to its sessions, a value too long for its
# column would be truncated with a warning; NO_ZERO_DATE must be kept
$my->sql("SET GLOBAL sql_mode = 'NO_ENGINE_SUBSTITUTION,NO_ZERO_DATE'");

# an identifier of each dialect
sub qi {
    my ($kind, $name) = @_;
    return $kind eq 'mysql' ? '`' . ($name =~ s/`/``/gr) . '`'
                            : '"' . ($name =~ s/"/""/gr) . '"';
}

# The seed's table, as the walkthrough creates it (MySQL), and the same for
# PostgreSQL (quoted names keep their case).
$my->create_user_info;
$pg->sql('CREATE TABLE user_info ("dingId" varchar(256) NULL,
  "active" varchar(256) NULL, "isAdmin" varchar(256) NULL,
  "userId" varchar(256) NULL, "name" varchar(256) NULL)');

# ebd's sessions: the server's modes and STRICT_ALL_TABLES
$my->sql('CREATE TABLE lax_t (eid varchar(64), short varchar(8) NULL, d date NULL)');

# names that only work quoted
my $ODD_TABLE = q{odd "tbl` name};
my $ODD_COL = q{v "x`y};
my %odd_cols = (k => '$.data.body.k', $ODD_COL => '$.data.body.v',
                eid => '$.id', miss => '$.data.body.nope',
                nul => '$.data.body.nul', num => '$.data.body.num',
                t => '$.data.body.t', obj => '$.data.body.obj',
                arr => '$.data.body.list[*]', deep => '$.data.body.a.b.c');
# the same with names and indexes only: ebd finds them while it scans the
# event, no tree per row (an object or array is written from a tree)
my %scan_cols = ((map { $_ => $odd_cols{$_} } grep { $_ ne 'arr' } keys %odd_cols),
                 list => '$.data.body.list', first => '$.data.body.list[2].y');

for my $kind (qw(mysql postgresql)) {
    my $text = 'text';
    my $cs = $kind eq 'mysql' ? ' CHARACTER SET utf8mb4' : '';
    $db{$kind}->sql(
        'CREATE TABLE ' . qi($kind, $ODD_TABLE) . ' ('
        . join(', ', map { qi($kind, $_) . " $text NULL" } sort keys %odd_cols)
        . ")$cs",
        'CREATE TABLE odd_scan ('
        . join(', ', map { qi($kind, $_) . " $text NULL" } sort keys %scan_cols)
        . ")$cs",
        "CREATE TABLE strict_t (eid varchar(64), short varchar(8) NULL, "
        . "req varchar(20) NOT NULL)$cs",
        "CREATE TABLE bulk_t (eid varchar(64), n varchar(20))$cs",
        "CREATE TABLE burst_t (eid varchar(64), n varchar(20))$cs",
        "CREATE TABLE dedup_ign (eid varchar(64) PRIMARY KEY, n varchar(20))$cs",
        "CREATE TABLE dedup_rej (eid varchar(64) PRIMARY KEY, n varchar(20))$cs");
}

# --- the configuration -------------------------------------------------------

my $retry = { strategy => 'backoff', attempts => 400, interval => '100ms',
              max_interval => '200ms' };
my %seed_cols = (dingId => '$.data.body.dingId', active => '$.data.body.active',
                 isAdmin => '$.data.body.isAdmin', userId => '$.data.body.userId',
                 name => '$.data.body.name');

sub sql_target {
    my ($kind, %o) = @_;
    return $db{$kind}->target(retry => $retry, timeout => '5s', %o);
}

my (%targets, %rules);
for my $kind (qw(mysql postgresql)) {
    my $k = $kind eq 'mysql' ? 'mysql' : 'pg';
    $targets{"users-$k"}  = sql_target($kind, table => 'user_info', columns => \%seed_cols);
    $targets{"odd-$k"}    = sql_target($kind, table => $ODD_TABLE, columns => \%odd_cols);
    $targets{"odds-$k"}   = sql_target($kind, table => 'odd_scan', columns => \%scan_cols);
    $targets{"strict-$k"} = sql_target($kind, table => 'strict_t',
                                       columns => { eid => '$.id', short => '$.data.body.short',
                                                    req => '$.data.body.req' },
                                       # one connection: while it inserts the
                                       # first row, the others queue up
                                       batch => 100, pool => 1, concurrency => 256);
    $targets{"bulk-$k"}   = sql_target($kind, table => "$db{$kind}{database}.bulk_t",
                                       columns => { eid => '$.id', n => '$.data.n' },
                                       batch => 200, pool => 2, concurrency => 1024);
    $targets{"burst-$k"}  = sql_target($kind, table => 'burst_t',
                                       columns => { eid => '$.id', n => '$.data.n' },
                                       batch => 50, pool => 3, concurrency => 200,
                                       timeout => '2s');
    # the event id as a unique key: a redelivery is refused by the database
    $targets{"dedup-ign-$k"} = sql_target($kind, table => 'dedup_ign', on_duplicate => 'ignore',
                                          columns => { eid => '$.id', n => '$.data.n' });
    $targets{"dedup-rej-$k"} = sql_target($kind, table => 'dedup_rej',
                                          columns => { eid => '$.id', n => '$.data.n' });
}
$targets{'lax-mysql'} = sql_target('mysql', table => 'lax_t', batch => 100, pool => 1,
                                   columns => { eid => '$.id', short => '$.data.body.short',
                                                d => '$.data.body.d' });
# PostgreSQL's schema-qualified name is public.bulk_t
$targets{'bulk-pg'}{table} = 'public.bulk_t';
# the seed's targets keep their passwords out of the file (ebd_secret.c):
# MySQL's in ebd's environment, PostgreSQL's in a file
$targets{'users-mysql'}{password_env} = 'EB_T_MYSQL_PASSWORD';
my $pg_pw_file = File::Temp::tempdir('eb-071-XXXXXX', TMPDIR => 1, CLEANUP => 1) . '/pg.pw';
EBTest::write_file($pg_pw_file, delete($targets{'users-pg'}{password}) . "\n");
$targets{'users-pg'}{password_file} = $pg_pw_file;
my $mysql_pw = delete $targets{'users-mysql'}{password};

my $cfg = {
    targets => \%targets,
    buses => {
        hr => { rules => {
            # the seed's walkthrough rule
            'new-employee' => {
                pattern => { source => ['my.dingtalk'],
                             data => { body => { syncAction => ['user_add_org'] } } },
                targets => [ { target => 'users-mysql' }, { target => 'users-pg' } ] },
            'odd' => {
                pattern => { source => ['my.dingtalk'],
                             data => { body => { syncAction => ['odd'] } } },
                targets => [ map { { target => $_ } } qw(odd-mysql odd-pg odds-mysql odds-pg) ] },
        } },
        strict => { rules => { all => { pattern => { source => ['strict.src'] },
            targets => [ { target => 'strict-mysql' }, { target => 'strict-pg' } ] } } },
        lax => { rules => { all => { pattern => { source => ['lax.src'] },
            targets => [ { target => 'lax-mysql' } ] } } },
        bulk => { rules => { all => { pattern => { source => ['bulk.src'] },
            targets => [ { target => 'bulk-mysql' }, { target => 'bulk-pg' } ] } } },
        dedup => { rules => { all => { pattern => { source => ['dedup.src'] },
            targets => [ map { { target => $_ } } qw(dedup-ign-mysql dedup-rej-mysql dedup-ign-pg dedup-rej-pg) ] } } },
        burst => { rules => { all => { pattern => { source => ['burst.src'] },
            targets => [ { target => 'burst-mysql' }, { target => 'burst-pg' } ] } } },
    },
};

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hr     { eventbridge_source my.dingtalk bus=hr; }
        location /strict { eventbridge_source strict.src bus=strict; }
        location /lax    { eventbridge_source lax.src bus=lax; }
        location /bulk   { eventbridge_put_events bus=bulk; }
        location /burst  { eventbridge_put_events bus=burst; }
    }
EOF
my $conf = $ngx->dir . '/buses.json';
write_file($conf, $JSON->encode($cfg));
{
    my ($rc, $out) = $ngx->test_conf;
    is($rc, 0, 'nginx -t accepts the SQL targets') or diag $out;
}
$ngx->start;

sub post {
    my ($path, $body, $ct) = @_;
    my $r = $ngx->request(method => 'POST', path => $path, body => $body,
                          headers => [ 'Content-Type' => $ct // 'application/json' ]);
    $r->{json} //= EBTest::json_decode($r->{body} // '');
    return $r;
}

# PutEvents: the events with the given ids (data {n: i}), 100 a request
sub put_events {
    my ($path, $source, @ids) = @_;
    my $ok = 0;
    while (my @chunk = splice @ids, 0, 100) {
        my $body = $JSON->encode([ map { { specversion => '1.0', id => $_, source => $source,
                                           type => 'test.sql', datacontenttype => 'application/json',
                                           data => { n => ($_ =~ /(\d+)$/)[0] } } } @chunk ]);
        my $r = post($path, $body, 'application/cloudevents-batch+json');
        $ok += scalar(@chunk) - ($r->{json}{failedEntryCount} // 0)
            if $r->{status} == 200;
    }
    return $ok;
}

sub count1 {
    my ($kind, $q) = @_;
    my $r = eval { $db{$kind}->sql($q) };
    return -1 unless $r && @$r;
    return $r->[0][0] // 0;
}

# --- everything queued before ebd starts ------------------------------------

# 1. the seed's walkthrough, and a user_leave_org that no rule wants
my $dingtalk = slurp('t/data/dingtalk_user_add_org.json');
my $seed = post('/hr', $dingtalk);
is($seed->{status}, 200, 'walkthrough: the DingTalk user_add_org webhook is accepted')
    or diag $seed->{raw};
(my $leave = $dingtalk) =~ s/user_add_org/user_leave_org/;
is(post('/hr', $leave)->{status}, 200, 'walkthrough: a user_leave_org is accepted too');

# 2. hostile and awkward values, each in its own event
my @odd = (
    q{'); DROP TABLE user_info; --},
    q{"; DROP TABLE "user_info"; --},
    q{` OR 1=1; DROP TABLE `user_info`; -- },
    q{back\\slash \\' \\" \\\\ \\0 \\n end\\},
    q{$1 $2 ? ?? :name @v %s %n ${x}},
    qq{小明 ünïcødé 😀 𝄞 \x{200B}zero-width},
    join('', map { chr } 1 .. 31, 127) . ' controls',
    "line1\nline2\r\n\ttabbed",
    '',
    'NULL',
    'x' x 1900,
);
for my $i (0 .. $#odd) {
    my $body = { syncAction => 'odd', k => "k$i", v => $odd[$i] };
    if ($i == 0) {
        @$body{qw(nul num t obj list)} = (undef, 12.50, JSON::PP::true,
                                          { b => [1, 'two'], a => undef }, [3, 'x', { y => 1 }]);
        $body->{a} = { b => { c => 'deep' } };
    }
    # the number keeps its text: write it ourselves
    my $text = $JSON->encode($body);
    $text =~ s/"num":12\.5\b/"num":12.50/;
    my $r = post('/hr', $text);
    is($r->{status}, 200, "odd value $i accepted") or diag $r->{raw};
}

# 3. strict_t: some values too long (varchar(8)), some missing or null for
# a NOT NULL column; 40 events in all
my (%bad, @strict_ids);
for my $i (1 .. 40) {
    my %b = (short => 's' x 8, req => "r$i");
    if ($i == 7 || $i == 23) { $b{short} = 's' x 9; $bad{$i} = 'too long' }
    if ($i == 12) { delete $b{req}; $bad{$i} = 'missing' }
    if ($i == 31) { $b{req} = undef; $bad{$i} = 'null' }
    my $r = post('/strict', $JSON->encode(\%b));
    is($r->{status}, 200, "strict event $i accepted") if $r->{status} != 200;
    push @strict_ids, $r->{json}{eventId} // "?$i";
}
my %strict_bad_ids = map { ($strict_ids[$_ - 1] => $bad{$_}) } keys %bad;

# 3b. lax_t on the lenient server: a value too long for varchar(8), a zero
# date (an error under NO_ZERO_DATE with strict mode), and good rows
my %lax;
for my $b ({ short => 'ok1', d => '2026-01-02' }, { short => 'x' x 9, bad => 'too long' },
           { short => 'ok2', d => '0000-00-00', bad => 'zero date' }, { short => 'ok3' }) {
    my $r = post('/lax', $JSON->encode($b));
    is($r->{status}, 200, "lax event $b->{short} accepted") if $r->{status} != 200;
    $lax{ $r->{json}{eventId} // "?$b->{short}" } = $b->{bad} // '';
}

# 4. 2,000 events for the batching targets
my @bulk_ids = map { sprintf 'bulk-%04d', $_ } 1 .. 2000;
is(put_events('/bulk', 'bulk.src', @bulk_ids), 2000, 'bulk: 2,000 events accepted');
is($redis->xlen('eb:{bulk}:target:bulk-mysql'), 2000, 'bulk: 2,000 entries wait for bulk-mysql');

# --- ebd ---------------------------------------------------------------------

my $ebd = EBTest::Ebd->start(config => $conf, redis => $redis, level => 'debug',
                             name => 'ebd-sql',
                             env => { EB_T_MYSQL_PASSWORD => $mysql_pw });
ok($ebd->alive, 'ebd started') or diag $ebd->log;
like($ebd->log, qr/ebd: ready/, 'ebd is ready');

# --- 1. the seed's walkthrough ------------------------------------------------

my @seed_cols = qw(dingId active isAdmin userId name);
my @seed_want = ('$:***:$5RU***QhP/pK**+4A==', 'true', 'false', '1411****46379',
                 bytes('小明'));
for my $kind (qw(mysql postgresql)) {
    my $t = "SELECT " . join(', ', map { qi($kind, $_) } @seed_cols) . " FROM user_info";
    my $rows;
    wait_for(sub { $rows = eval { $db{$kind}->sql($t) } // []; @$rows >= 1 }, 30);
    sleep 0.3;
    $rows = $db{$kind}->sql($t);
    is(scalar @$rows, 1, "walkthrough ($kind): exactly one user_info row (user_leave_org matched no rule)");
    is_deeply($rows->[0], \@seed_want,
              "walkthrough ($kind): dingId, active, isAdmin, userId, name are the webhook's")
        or diag explain $rows;
}

# --- 2. hostile values, NULLs, texts -------------------------------------------

for my $kind (qw(mysql postgresql)) {
    my @c = sort keys %odd_cols;
    my $t = 'SELECT ' . join(', ', map { qi($kind, $_) } @c) . ' FROM ' . qi($kind, $ODD_TABLE);
    my $rows;
    wait_for(sub { $rows = eval { $db{$kind}->sql($t) } // []; @$rows >= @odd }, 30);
    is(scalar @$rows, scalar @odd, "odd ($kind): one row per event, in a table whose name needs quoting");
    my %by = map { my %r; @r{@c} = @$_; ($r{k} // '?') => \%r } @$rows;
    for my $i (0 .. $#odd) {
        my $r = $by{"k$i"} // {};
        my $name = $odd[$i] =~ s/[^\x20-\x7e]/./gr;
        $name = substr($name, 0, 40);
        is($r->{$ODD_COL}, bytes($odd[$i]), "odd ($kind): value $i lands byte for byte: '$name'");
        ok(defined $r->{eid} && length $r->{eid} > 10, "odd ($kind): value $i: eid is the event id");
        ok(!defined $r->{miss}, "odd ($kind): value $i: a missing value is NULL");
    }
    my $r = $by{k0} // {};
    ok(!defined $r->{nul}, "odd ($kind): JSON null is NULL");
    is($r->{num}, '12.50', "odd ($kind): a number keeps its text");
    is($r->{t}, 'true', "odd ($kind): true is the text true");
    is($r->{obj}, '{"a":null,"b":[1,"two"]}', "odd ($kind): an object is its compact JSON");
    is($r->{arr}, '[3,"x",{"y":1}]', "odd ($kind): a non-definite path is the JSON array of its matches");
    is($r->{deep}, 'deep', "odd ($kind): a nested value");

    # the values found while scanning are those read from a tree
    my @sc = sort keys %scan_cols;
    my $st = 'SELECT ' . join(', ', map { qi($kind, $_) } @sc) . ' FROM odd_scan';
    my $srows;
    wait_for(sub { $srows = eval { $db{$kind}->sql($st) } // []; @$srows >= @odd }, 30);
    my %sby = map { my %r; @r{@sc} = @$_; ($r{k} // '?') => \%r } @$srows;
    my $same = grep {
        my ($a, $b) = ($by{"k$_"} // {}, $sby{"k$_"} // {});
        !grep { ($a->{$_} // "\0NULL") ne ($b->{$_} // "\0NULL") } grep { $_ ne 'arr' } @c
    } 0 .. $#odd;
    is($same, scalar @odd, "odd ($kind): columns of names and indexes only: the same "
       . "$same rows of " . @odd);
    is($sby{k0}{list}, '[3,"x",{"y":1}]', "odd ($kind): there, an array is its compact JSON");
    is($sby{k0}{first}, '1', "odd ($kind): there, an index into it");
    ok(!defined $sby{k1}{list}, "odd ($kind): there, a missing array is NULL");
    is(count1($kind, 'SELECT count(*) FROM user_info'), 1,
       "odd ($kind): user_info is still there, with its row");
}

# --- 3. data and constraint errors: dead letters, the rest inserted ---------

for my $kind (qw(mysql postgresql)) {
    my $k = $kind eq 'mysql' ? 'mysql' : 'pg';
    my $dlq = "eb:{strict}:dlq:strict-$k";
    wait_for(sub { ($redis->xlen($dlq) // 0) >= 4
                   && count1($kind, 'SELECT count(*) FROM strict_t') >= 36 }, 30);
    sleep 0.5;
    my $rows = $db{$kind}->sql('SELECT eid FROM strict_t');
    my %got = map { $_->[0] => 1 } @$rows;
    is(scalar @$rows, 36, "strict ($kind): 36 of 40 rows inserted");
    my @missing = grep { !$got{$_} && !$strict_bad_ids{$_} } @strict_ids;
    is_deeply(\@missing, [], "strict ($kind): every good event has its row");
    ok(!(grep { $strict_bad_ids{$_} } keys %got), "strict ($kind): no bad event has a row");

    my $dl = $redis->xrange($dlq);
    is(scalar @$dl, 4, "strict ($kind): 4 dead letters in $dlq");
    my %dead = map { ((EBTest::json_decode($_->[1]{event} // '') // {})->{id} // '?') => $_->[1] } @$dl;
    is_deeply([ sort keys %dead ], [ sort keys %strict_bad_ids ],
              "strict ($kind): the dead letters are exactly the bad events");
    for my $id (sort keys %dead) {
        my $f = $dead{$id};
        my $want = $strict_bad_ids{$id} // '?';
        is($f->{attempts}, 1, "strict ($kind): $want: dead-lettered at the first attempt (rejected, no retry)");
        if ($kind eq 'mysql') {
            like("$f->{status} $f->{error}", $want eq 'too long' ? qr/^1406 .*too long/i : qr/^1048 .*null/i,
                 "strict ($kind): $want: the MySQL error is recorded");
        } else {
            like($f->{error}, $want eq 'too long' ? qr/22001/ : qr/23502/,
                 "strict ($kind): $want: the SQLSTATE is recorded");
        }
    }
    like($ebd->log, qr/target strict-$k: \Q$kind\E connection \d+: a batch of ([2-9]|\d\d+) rows failed/,
         "strict ($kind): a multi-row batch failed and was retried row by row");
}

# --- 3b. a lenient server: strict all the same, its other modes kept -----------

{
    is($my->sql('SELECT @@GLOBAL.sql_mode')->[0][0], 'NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION',
       'lax: the server\'s own sql_mode is not strict');
    my $dlq = 'eb:{lax}:dlq:lax-mysql';
    wait_for(sub { ($redis->xlen($dlq) // 0) >= 2 && count1('mysql', 'SELECT count(*) FROM lax_t') >= 2 }, 30);
    sleep 0.5;
    my %rows = map { $_->[0] => $_->[1] } @{ $my->sql('SELECT eid, short FROM lax_t') };
    is_deeply([ sort keys %rows ], [ sort grep { !$lax{$_} } keys %lax ],
              'lax: the good rows inserted, no row for a bad value (none truncated, no zero date)');
    is(scalar(grep { length($_ // '') == 8 } values %rows), 0, 'lax: no truncated value');
    my %dead = map { ((EBTest::json_decode($_->[1]{event} // '') // {})->{id} // '?') => $_->[1] }
               @{ $redis->xrange($dlq) };
    is_deeply([ sort keys %dead ], [ sort grep { $lax{$_} } keys %lax ],
              'lax: the bad events dead-lettered');
    for my $id (sort keys %dead) {
        my $f = $dead{$id};
        like("$f->{status} $f->{error}",
             $lax{$id} eq 'too long' ? qr/^1406 mysql error 1406 \(22001\): Data too long for column .short./
                                     : qr/^1292 mysql error 1292 \(22007\): Incorrect date value: '0000-00-00'/,
             "lax: $lax{$id}: dead-lettered with MariaDB's message");
        is($f->{attempts}, 1, "lax: $lax{$id}: at the first attempt");
    }
}

# --- 4. batching: 2,000 queued events ------------------------------------------

for my $kind (qw(mysql postgresql)) {
    my $k = $kind eq 'mysql' ? 'mysql' : 'pg';
    my $t0 = time;
    wait_for(sub { count1($kind, 'SELECT count(*) FROM bulk_t') >= 2000 }, 60);
    my $r = $db{$kind}->sql('SELECT count(*), count(DISTINCT eid) FROM bulk_t');
    is_deeply($r->[0], [2000, 2000], "bulk ($kind): 2,000 rows, 2,000 distinct events");
    my $dups = $db{$kind}->sql('SELECT min(eid), max(eid) FROM bulk_t');
    is_deeply($dups->[0], ['bulk-0001', 'bulk-2000'], "bulk ($kind): the sent ids");
    my @n = $ebd->log =~ /target bulk-$k: \Q$kind\E connection \d+: (\d+) row\(s\) inserted in one statement/g;
    my $sum = 0;
    $sum += $_ for @n;
    my ($max) = sort { $b <=> $a } @n;
    $max //= 0;
    is($sum, 2000, "bulk ($kind): the statements inserted 2,000 rows in all");
    cmp_ok($max, '>=', 20, "bulk ($kind): multi-row statements were used ("
           . scalar(@n) . " statements, the largest $max rows)");
    cmp_ok(scalar(@n), '<=', 400, "bulk ($kind): far fewer statements than rows");
}

# --- 5. the database goes away in the middle of a burst --------------------------

{
    my @ids = map { sprintf 'burst-%04d', $_ } 1 .. 1500;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        # 10 events a request, about 25 ms apart: some 4 s of traffic
        my @left = @ids;
        my $ok = 0;
        while (my @chunk = splice @left, 0, 10) {
            $ok += put_events('/burst', 'burst.src', @chunk);
            sleep 0.025;
        }
        POSIX::_exit($ok == @ids ? 0 : 1);
    }
    push @children, $pid;

    sleep 0.8;
    my %before = map { $_ => count1($_, 'SELECT count(*) FROM burst_t') } qw(mysql postgresql);
    $my->kill9;                 # a crash: statements in flight get no answer
    $pg->stop;                  # a fast shutdown: sessions are terminated
    my $t_down = time;
    for my $kind (qw(mysql postgresql)) {
        ok($before{$kind} > 0 && $before{$kind} < 1500,
           "burst ($kind): the server went away mid-burst ($before{$kind} of 1500 rows in)");
    }
    sleep 1.5;
    $my->start_again;
    $pg->start_again;
    diag sprintf 'burst: databases down for %.1f s', time - $t_down;
    waitpid $pid, 0;
    @children = grep { $_ != $pid } @children;
    is($?, 0, 'burst: nginx accepted all 1,500 events');

    for my $kind (qw(mysql postgresql)) {
        my $k = $kind eq 'mysql' ? 'mysql' : 'pg';
        wait_for(sub { count1($kind, 'SELECT count(DISTINCT eid) FROM burst_t') >= 1500 }, 90);
        my $r = $db{$kind}->sql('SELECT eid FROM burst_t');
        my %seen;
        $seen{$_->[0]}++ for @$r;
        my @missing = grep { !$seen{$_} } @ids;
        is(scalar @missing, 0, "burst ($kind): every event has at least one row")
            or diag "missing: @missing[0 .. ($#missing > 9 ? 9 : $#missing)]";
        is(scalar(grep { !/^burst-\d{4}$/ } keys %seen), 0, "burst ($kind): no stray rows");
        cmp_ok(scalar @$r, '>=', 1500, "burst ($kind): " . scalar(@$r)
               . " rows for 1,500 events (a redelivery after a lost answer may add one)");
        is($redis->xlen("eb:{burst}:dlq:burst-$k") // 0, 0, "burst ($kind): nothing dead-lettered");
        my $log = $ebd->log;
        like($log, qr/target burst-$k: \Q$kind\E connection \d+: .*(cannot connect|reconnecting)/,
             "burst ($kind): ebd saw the database go away");
        like($log, qr/target burst-$k: \Q$kind\E connection \d+ to 127\.0\.0\.1:\d+ established/,
             "burst ($kind): and connected again");
    }
    # all acknowledged
    ok(wait_for(sub {
        my $p = $redis->cmd('XPENDING', 'eb:{burst}:target:burst-mysql', 'ebd');
        my $q = $redis->cmd('XPENDING', 'eb:{burst}:target:burst-pg', 'ebd');
        ref $p eq 'ARRAY' && ref $q eq 'ARRAY' && $p->[0] == 0 && $q->[0] == 0 }, 30),
       'burst: every entry acknowledged');
}

# --- the event id as a unique key: redeliveries --------------------------------

{
    # d1..d20, then d1, d5 and d20 again (as after a crash), in one burst so
    # that the duplicates share multi-row batches with new rows
    my @ids = ((map { "d$_" } 1 .. 20), 'd1', 'd5', 'd20');
    for my $t (qw(dedup-ign-mysql dedup-rej-mysql dedup-ign-pg dedup-rej-pg)) {
        $redis->pipeline(map { [ 'XADD', "eb:{dedup}:target:$t", '*', 'rule', 'all', 'event',
                                 qq({"id":"$_","source":"dedup.src","data":{"n":"$_"}}) ] } @ids);
    }
    for my $kind (qw(mysql postgresql)) {
        my $k = $kind eq 'mysql' ? 'mysql' : 'pg';
        ok(wait_for(sub {
            my $p = $redis->cmd('XPENDING', "eb:{dedup}:target:dedup-ign-$k", 'ebd');
            my $q = $redis->cmd('XPENDING', "eb:{dedup}:target:dedup-rej-$k", 'ebd');
            count1($kind, 'SELECT count(*) FROM dedup_ign') == 20
                && count1($kind, 'SELECT count(*) FROM dedup_rej') == 20
                && ($redis->xlen("eb:{dedup}:dlq:dedup-rej-$k") // 0) == 3
                && ref $p eq 'ARRAY' && $p->[0] == 0 && ref $q eq 'ARRAY' && $q->[0] == 0 }, 30),
           "dedup ($kind): 20 rows each, everything acknowledged");
        is($redis->xlen("eb:{dedup}:dlq:dedup-ign-$k") // 0, 0,
           "dedup ($kind): on_duplicate ignore: redeliveries count as delivered, no dead letter");
        my $dl = $redis->xrange("eb:{dedup}:dlq:dedup-rej-$k");
        is(join(',', sort map { (EBTest::json_decode($_->[1]{event}) // {})->{id} } @$dl), 'd1,d20,d5',
           "dedup ($kind): on_duplicate reject (default): exactly the redeliveries dead-lettered");
        like(join(' ', map { "$_->[1]{status} $_->[1]{error}" } @$dl),
             $kind eq 'mysql' ? qr/^1062 .*Duplicate/i : qr/23505/,
             "dedup ($kind): with the database's duplicate-key error");
    }
}

# nothing the drivers did is in the log as a secret
unlike($ebd->log, qr/\Q${\ $my->password }\E/, 'the database password is never logged');

$ebd->finish;
$ngx->finish;

done_testing;
