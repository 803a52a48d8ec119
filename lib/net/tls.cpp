#include "net/tls.hpp"

#include <sandbox/error.hpp>

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace sandbox::net {

namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;

namespace {

std::shared_ptr<ssl::context> base_context(ssl::context::method m) {
  auto ctx = std::make_shared<ssl::context>(m);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  return ctx;
}

template <class F>
void load(std::string_view what, F&& f) {
  try {
    f();
  } catch (const boost::system::system_error& e) {
    throw Error(errc::invalid_argument, fmt::format("TLS: cannot load {}: {}", what, e.code().message()));
  }
}

}  // namespace

std::shared_ptr<ssl::context> client_tls(const ClientOptions& o) {
  auto ctx = base_context(ssl::context::tls_client);
  auto buf = [](const std::string& s) { return boost::asio::buffer(s.data(), s.size()); };
  if (!o.ca_pem.empty()) load("the inline CA", [&] { ctx->add_certificate_authority(buf(o.ca_pem)); });
  if (!o.ca_file.empty()) load(o.ca_file.string(), [&] { ctx->load_verify_file(o.ca_file.string()); });
  if (o.ca_pem.empty() && o.ca_file.empty()) load("the system CA store", [&] { ctx->set_default_verify_paths(); });
  if (!o.client_cert_pem.empty()) load("the client certificate", [&] { ctx->use_certificate_chain(buf(o.client_cert_pem)); });
  if (!o.client_cert.empty())
    load(o.client_cert.string(), [&] { ctx->use_certificate_chain_file(o.client_cert.string()); });
  if (!o.client_key_pem.empty())
    load("the client key", [&] { ctx->use_private_key(buf(o.client_key_pem), ssl::context::pem); });
  if (!o.client_key.empty())
    load(o.client_key.string(), [&] { ctx->use_private_key_file(o.client_key.string(), ssl::context::pem); });
  ctx->set_verify_mode(o.verify ? ssl::verify_peer : ssl::verify_none);
  return ctx;
}

std::shared_ptr<ssl::context> server_tls(const std::filesystem::path& cert_chain, const std::filesystem::path& key) {
  auto ctx = base_context(ssl::context::tls_server);
  load(cert_chain.string(), [&] { ctx->use_certificate_chain_file(cert_chain.string()); });
  load(key.string(), [&] { ctx->use_private_key_file(key.string(), ssl::context::pem); });
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    throw Error(errc::invalid_argument,
                fmt::format("TLS: the key {} does not match the certificate {}", key.string(), cert_chain.string()));
  return ctx;
}

void prepare_client(beast::ssl_stream<beast::tcp_stream>& s, const Url& url, const ClientOptions& o) {
  const std::string& name = o.server_name.empty() ? url.host : o.server_name;
  boost::system::error_code ec;
  boost::asio::ip::make_address(name, ec);
  bool ip = !ec;
  SSL* h = s.native_handle();
  if (!ip) SSL_set_tlsext_host_name(h, name.c_str());  // SNI is for names only (RFC 6066)
  if (!o.verify) return;
  // OpenSSL checks the identity during the handshake: DNS SANs for a name, IP SANs for an
  // address (asio's host_name_verification treats both as names).
  if (ip) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(h), name.c_str());
  else SSL_set1_host(h, name.c_str());
}

std::string tls_failure(beast::ssl_stream<beast::tcp_stream>& s, const beast::error_code& ec) {
  long v = SSL_get_verify_result(s.native_handle());
  if (v != X509_V_OK) return fmt::format("certificate verify failed: {}", X509_verify_cert_error_string(v));
  return ec.message();
}

}  // namespace sandbox::net
