// server/openapi.hpp: GET /openapi.json, generated from the route table (router.hpp), so
// the document lists exactly the routes the router serves.
#pragma once

#include <string>
#include <string_view>

namespace sandbox::server {

// An OpenAPI 3.0 document for every route of routes().
std::string openapi_document(std::string_view version);

}  // namespace sandbox::server
