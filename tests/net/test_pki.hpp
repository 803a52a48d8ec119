// A throwaway PKI for TLS tests, made with the OpenSSL API: a CA, a server certificate for
// localhost, 127.0.0.1 and ::1, and a client certificate (mutual TLS), as PEM files.
//
//   auto pki = test::Pki::make(dir);   // pki.ca, pki.server_cert, pki.server_key, pki.client_*
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace sandbox::test {

struct Pki {
  std::filesystem::path ca, server_cert, server_key, client_cert, client_key, other_ca;

  static Pki make(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    Pki p;
    auto ca_key = key();
    auto ca_cert = cert("test CA", ca_key.get(), nullptr, ca_key.get(), "CA:TRUE", "");
    auto srv_key = key();
    auto srv = cert("localhost", srv_key.get(), ca_cert.get(), ca_key.get(), "CA:FALSE",
                    "DNS:localhost,IP:127.0.0.1,IP:::1");
    auto cli_key = key();
    auto cli = cert("test client", cli_key.get(), ca_cert.get(), ca_key.get(), "CA:FALSE", "");
    auto other_key = key();
    auto other = cert("another CA", other_key.get(), nullptr, other_key.get(), "CA:TRUE", "");
    p.ca = dir / "ca.pem";
    p.other_ca = dir / "other-ca.pem";
    p.server_cert = dir / "server.pem";
    p.server_key = dir / "server-key.pem";
    p.client_cert = dir / "client.pem";
    p.client_key = dir / "client-key.pem";
    write_cert(p.ca, ca_cert.get());
    write_cert(p.other_ca, other.get());
    write_cert(p.server_cert, srv.get());
    write_key(p.server_key, srv_key.get());
    write_cert(p.client_cert, cli.get());
    write_key(p.client_key, cli_key.get());
    return p;
  }

 private:
  using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
  using Cert = std::unique_ptr<X509, decltype(&X509_free)>;

  static Key key() {
    Key k(EVP_EC_gen("P-256"), EVP_PKEY_free);
    if (!k) throw std::runtime_error("EVP_EC_gen failed");
    return k;
  }

  static void ext(X509* c, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : c, c, nullptr, nullptr, 0);
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (!e) throw std::runtime_error("bad extension " + value);
    X509_add_ext(c, e, -1);
    X509_EXTENSION_free(e);
  }

  static Cert cert(const std::string& cn, EVP_PKEY* k, X509* issuer, EVP_PKEY* issuer_key,
                   const std::string& basic, const std::string& san) {
    static long serial = 1;
    Cert c(X509_new(), X509_free);
    X509_set_version(c.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400);
    X509_set_pubkey(c.get(), k);
    X509_NAME* name = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
    ext(c.get(), issuer, NID_basic_constraints, "critical," + basic);
    if (basic == "CA:TRUE") ext(c.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    ext(c.get(), issuer, NID_subject_key_identifier, "hash");
    if (!san.empty()) ext(c.get(), issuer, NID_subject_alt_name, san);
    if (!X509_sign(c.get(), issuer_key, EVP_sha256())) throw std::runtime_error("X509_sign failed");
    return c;
  }

  static void write_cert(const std::filesystem::path& f, X509* c) {
    FILE* out = std::fopen(f.c_str(), "w");
    if (!out) throw std::runtime_error("cannot write " + f.string());
    PEM_write_X509(out, c);
    std::fclose(out);
  }
  static void write_key(const std::filesystem::path& f, EVP_PKEY* k) {
    FILE* out = std::fopen(f.c_str(), "w");
    if (!out) throw std::runtime_error("cannot write " + f.string());
    PEM_write_PrivateKey(out, k, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(out);
  }
};

}  // namespace sandbox::test
