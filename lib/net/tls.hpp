// net/tls.hpp: the TLS contexts, built once per client or server (loading a CA store is not
// free) and shared by its connections.
//
//   auto ctx = net::client_tls(options);     // verify against options.ca_* or the system
//   net::prepare_client(*stream.tls(), url, options);   // SNI and the identity to verify
//   auto srv = net::server_tls("cert.pem", "key.pem");
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <filesystem>
#include <memory>
#include <string>

#include "net/http_client.hpp"

namespace sandbox::net {

// Trust (ca_pem, ca_file, else the system store: SSL_CERT_FILE / SSL_CERT_DIR are honoured),
// the client certificate if any, TLS 1.2 at least. Throws Error(invalid_argument) for a file
// or PEM that does not load.
std::shared_ptr<boost::asio::ssl::context> client_tls(const ClientOptions& options);

// A certificate chain and its key (PEM files). Throws Error(invalid_argument).
std::shared_ptr<boost::asio::ssl::context> server_tls(const std::filesystem::path& cert_chain,
                                                      const std::filesystem::path& key);

// Per connection: SNI for a name, and the peer identity to verify (the name, or the address
// for an IP literal; options.server_name overrides both).
void prepare_client(boost::beast::ssl_stream<boost::beast::tcp_stream>& s, const Url& url,
                    const ClientOptions& options);

// Why a handshake failed, with the certificate verdict when that was it.
std::string tls_failure(boost::beast::ssl_stream<boost::beast::tcp_stream>& s, const boost::beast::error_code& ec);

}  // namespace sandbox::net
