package EBTest::TLS;

# Certificates for tests, made by the openssl CLI in a directory: a CA,
# a server certificate it signed for 127.0.0.1 and localhost, a client
# certificate it signed for the user ebx509 (its CN: PostgreSQL's
# clientcert=verify-full matches it against the user name), and a second CA that signed none of them (a
# client trusting only that one must refuse the server).
#
#   my $c = EBTest::TLS->make($dir);
#   $c->{ca}, $c->{server_cert}, $c->{server_key},
#   $c->{client_cert}, $c->{client_key}, $c->{other_ca}
#   my $o = EBTest::TLS->server_for($dir, 'other', 'other.example');

use strict;
use warnings;

sub _run {
    my (@cmd) = @_;
    my $out = `@cmd 2>&1`;
    die "@cmd: $out" if $?;
}

sub _ca {
    my ($dir, $name) = @_;
    _run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
         '-keyout', "$dir/$name.key", '-out', "$dir/$name.pem",
         '-days', '2', '-subj', "'/CN=eventbridge test $name'");
}

sub _leaf {
    my ($dir, $name, $ca, $ext, $cn) = @_;
    _run('openssl', 'req', '-newkey', 'rsa:2048', '-nodes',
         '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr",
         '-subj', "'/CN=$cn'");
    open my $fh, '>', "$dir/$name.ext" or die "$dir/$name.ext: $!";
    print {$fh} $ext;
    close $fh;
    _run('openssl', 'x509', '-req', '-in', "$dir/$name.csr",
         '-CA', "$dir/$ca.pem", '-CAkey', "$dir/$ca.key", '-CAcreateserial',
         '-out', "$dir/$name.pem", '-days', '2', '-extfile', "$dir/$name.ext");
}

# another server certificate of the test CA (after make), for DNS name
# NAME only: $dir/FILE.pem, $dir/FILE.key
sub server_for {
    my ($class, $dir, $file, $name) = @_;
    _leaf($dir, $file, 'ca',
          "subjectAltName=DNS:$name\nextendedKeyUsage=serverAuth\n", $name);
    return { cert => "$dir/$file.pem", key => "$dir/$file.key" };
}

sub make {
    my ($class, $dir) = @_;
    _ca($dir, 'ca');
    _ca($dir, 'other-ca');
    _leaf($dir, 'server', 'ca',
          "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
          . "extendedKeyUsage=serverAuth\n", 'localhost');
    _leaf($dir, 'client', 'ca', "extendedKeyUsage=clientAuth\n", 'ebx509');
    return {
        ca          => "$dir/ca.pem",
        other_ca    => "$dir/other-ca.pem",
        server_cert => "$dir/server.pem",
        server_key  => "$dir/server.key",
        client_cert => "$dir/client.pem",
        client_key  => "$dir/client.key",
    };
}

1;
