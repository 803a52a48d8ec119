#include "server/openapi.hpp"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "server/router.hpp"

namespace sandbox::server {
namespace {

using nlohmann::json;

json ref(std::string_view name) {
  return {{"$ref", "#/components/schemas/" + std::string(name)}};
}

json json_content(json schema) { return {{"application/json", {{"schema", std::move(schema)}}}}; }

json components() {
  json error = {{"type", "object"},
                {"required", {"error"}},
                {"properties",
                 {{"error",
                   {{"type", "object"},
                    {"required", {"code", "message"}},
                    {"properties",
                     {{"code", {{"type", "string"},
                                {"enum", {"invalid_argument", "not_found", "already_exists",
                                          "permission_denied", "unauthenticated",
                                          "resource_exhausted", "unavailable",
                                          "failed_precondition", "timeout", "internal", "session_lost"}}}},
                      {"message", {{"type", "string"}}},
                      // Over a quota (429): which one.
                      {"quota", {{"type", "string"},
                                 {"enum", {"sessions", "sessions_per_tenant", "executions_per_tenant"}}}}}}}}}}};
  json exec_request = {
      {"type", "object"},
      {"required", {"code"}},
      {"properties",
       {{"code", {{"type", "string"}}},
        {"stdin", {{"type", "string"}}},
        {"timeout", {{"type", "number"}, {"description", "seconds"}}},
        {"fresh", {{"type", "boolean"}}}}}};
  json exec_started = {{"type", "object"},
                       {"properties",
                        {{"execution_id", {{"type", "string"}}},
                         {"status", {{"type", "string"}, {"enum", {"Running"}}}}}}};
  json result = {
      {"type", "object"},
      {"properties",
       {{"execution_id", {{"type", "string"}}},
        {"status",
         {{"type", "string"}, {"enum", {"Running", "Finished", "Failed", "Timeout", "Killed"}}}},
        {"stdout", {{"type", "string"}}},
        {"stderr", {{"type", "string"}}},
        {"result", {{"type", "string"}, {"nullable", true}}},
        {"images",
         {{"type", "array"},
          {"items",
           {{"type", "object"},
            {"properties", {{"mime", {{"type", "string"}}}, {"data", {{"type", "string"}}}}}}}}},
        {"error", {{"type", "object"}, {"nullable", true}}},
        {"exit_code", {{"type", "integer"}, {"nullable", true}}},
        {"duration_ms", {{"type", "integer"}}},
        {"truncated", {{"type", "boolean"}}}}}};
  json limits = {{"type", "object"},
                 {"properties",
                  {{"timeout", {{"type", "number"}, {"description", "seconds"}}},
                   {"memory_bytes", {{"type", "integer"}}},
                   {"max_processes", {{"type", "integer"}}},
                   {"disk_bytes", {{"type", "integer"}}},
                   {"output_bytes", {{"type", "integer"}}},
                   {"upload_bytes", {{"type", "integer"}}},
                   {"result_bytes", {{"type", "integer"}, {"description", "0: output_bytes"}}},
                   {"image_bytes", {{"type", "integer"}, {"description", "0: 4x output_bytes"}}},
                   {"images_bytes", {{"type", "integer"}, {"description", "0: 8x output_bytes"}}},
                   {"history_bytes", {{"type", "integer"}, {"description", "0: 16x output_bytes"}}},
                   {"cpu_time", {{"type", "number"}, {"description", "seconds"}}},
                   {"open_files", {{"type", "integer"}}},
                   {"cpus", {{"type", "number"}}}}},
                 {"additionalProperties", false}};
  json session_request = {{"type", "object"},
                          {"properties",
                           {{"id", {{"type", "string"}, {"pattern", "^[A-Za-z0-9_-]{1,64}$"}}},
                            {"language",
                             {{"type", "string"}, {"enum", {"python", "nodejs", "shell"}}}},
                            {"limits", ref("Limits")}}}};
  json session = {{"type", "object"},
                  {"properties",
                   {{"id", {{"type", "string"}}},
                    {"status", {{"type", "string"}, {"enum", {"Pending", "Ready", "Closed"}}}},
                    {"placement", {{"type", "string"}}},
                    {"isolation", {{"type", "string"}}},
                    {"created", {{"type", "integer"}}},
                    {"limits", ref("Limits")}}}};
  return {{"schemas",
           {{"Error", error},
            {"ExecRequest", exec_request},
            {"ExecStarted", exec_started},
            {"Result", result},
            {"Limits", limits},
            {"SessionRequest", session_request},
            {"Session", session}}},
          {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}};
}

std::string operation_id(const Route& r) {
  std::string id = std::string(r.method);
  std::transform(id.begin(), id.end(), id.begin(), [](unsigned char c) { return std::tolower(c); });
  for (char c : r.pattern) {
    if (std::isalnum(static_cast<unsigned char>(c))) id += c;
    else if (c == '/' || c == '.') id += '_';
  }
  return id;
}

json success_content(const Route& r) {
  switch (r.reply) {
    case ReplyKind::text:
      return {{"text/plain", {{"schema", {{"type", "string"}}}}}};
    case ReplyKind::bytes:
      return {{"application/octet-stream", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}};
    case ReplyKind::events:
      return {{"text/event-stream", {{"schema", {{"type", "string"}}}}}};
    case ReplyKind::json:
      break;
  }
  switch (r.id) {
    case RouteId::exec_python:
    case RouteId::exec_nodejs:
    case RouteId::exec_shell:
      return json_content(ref("ExecStarted"));
    case RouteId::result:
      return json_content(ref("Result"));
    case RouteId::sessions_create:
    case RouteId::session_get:
      return json_content(ref("Session"));
    default:
      return json_content({{"type", "object"}});
  }
}

}  // namespace

std::string openapi_document(std::string_view version) {
  json paths = json::object();
  for (const Route& r : routes()) {
    json op = {{"operationId", operation_id(r)}, {"summary", r.summary}};
    json params = json::array();
    std::string_view p = r.pattern;
    for (auto open = p.find('{'); open != std::string_view::npos; open = p.find('{', open + 1)) {
      auto close = p.find('}', open);
      std::string name(p.substr(open + 1, close - open - 1));
      json schema = {{"type", name == "pid" ? "integer" : "string"}};
      params.push_back({{"name", name}, {"in", "path"}, {"required", true}, {"schema", schema}});
    }
    auto query = [&](std::string_view name, std::string_view type, std::string_view what) {
      params.push_back({{"name", name},
                        {"in", "query"},
                        {"required", false},
                        {"description", what},
                        {"schema", {{"type", type}}}});
    };
    if (r.id == RouteId::result || r.id == RouteId::stream) {
      query("execution_id", "string", "an earlier execution instead of the latest");
      query("offset", "integer", "first byte of stdout/stderr to return");
    }
    if (r.id == RouteId::result) {
      query("limit", "integer", "at most this many bytes of each stream");
      query("wait", "integer", "milliseconds to wait for the execution to end");
    }
    if (r.id == RouteId::cancel)
      query("execution_id", "string", "an earlier execution instead of the latest");
    if (r.id == RouteId::process_kill)
      query("signal", "integer", "the signal to send (default 9)");
    if (r.id == RouteId::files_upload)
      query("overwrite", "boolean", "replace an existing file instead of answering 409");
    if (!params.empty()) op["parameters"] = params;
    switch (r.body) {
      case BodyKind::exec:
        op["requestBody"] = {{"required", true}, {"content", json_content(ref("ExecRequest"))}};
        break;
      case BodyKind::session:
        op["requestBody"] = {{"required", false}, {"content", json_content(ref("SessionRequest"))}};
        break;
      case BodyKind::multipart:
        op["requestBody"] = {
            {"required", true},
            {"content",
             {{"multipart/form-data",
               {{"schema",
                 {{"type", "object"},
                  {"required", {"file"}},
                  {"properties", {{"file", {{"type", "string"}, {"format", "binary"}}}}}}}}}}}};
        break;
      case BodyKind::none:
        break;
    }
    json responses = {{std::to_string(r.ok_status),
                       {{"description", "success"}, {"content", success_content(r)}}},
                      {"default",
                       {{"description", "an error"}, {"content", json_content(ref("Error"))}}}};
    op["responses"] = responses;
    if (!r.needs_token) op["security"] = json::array();
    std::string method(r.method);
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    paths[std::string(r.pattern)][method] = op;
    if (r.method == "GET") {  // HEAD wherever GET: the same headers, no body
      json head = op;
      head["operationId"] = "head" + operation_id(r).substr(3);
      for (auto& [code, response] : head["responses"].items()) response.erase("content");
      paths[std::string(r.pattern)]["head"] = std::move(head);
    }
  }
  json doc = {{"openapi", "3.0.3"},
              {"info",
               {{"title", "libsandbox HTTP API"},
                {"version", version},
                {"description",
                 "Run untrusted Python, Node.js and shell code in isolated sessions."}}},
              {"paths", paths},
              {"components", components()},
              {"security", {{{"bearer", json::array()}}}}};
  return doc.dump(2);
}

}  // namespace sandbox::server
