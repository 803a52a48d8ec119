#include "server/multipart.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "sandbox/error.hpp"

namespace sandbox::server {
namespace {

struct Collected {
  std::vector<Part> parts;
  std::vector<std::string> data;
  int ends = 0;
  MultipartCallbacks callbacks() {
    return {.on_part = [this](const Part& p) { parts.push_back(p); data.emplace_back(); },
            .on_data = [this](std::string_view d) { data.back().append(d); },
            .on_part_end = [this] { ++ends; }};
  }
};

const std::string kBody =
    "preamble\r\n--XyZ\r\n"
    "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
    "hello\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"q\\\".bin\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n"
    "line1\r\n--Xynot-a-boundary\r\n\r\n--Xy\r\n"
    "\r\n--XyZ--\r\nepilogue";

TEST(Multipart, ParsesPartsInOneChunk) {
  Collected c;
  MultipartParser p("XyZ", c.callbacks());
  p.feed(kBody);
  p.finish();
  ASSERT_EQ(c.parts.size(), 2u);
  EXPECT_EQ(c.parts[0].name, "note");
  EXPECT_FALSE(c.parts[0].filename);
  EXPECT_EQ(c.data[0], "hello");
  EXPECT_EQ(c.parts[1].name, "file");
  EXPECT_EQ(c.parts[1].filename, "a \"q\".bin");
  EXPECT_EQ(c.parts[1].content_type, "application/octet-stream");
  EXPECT_EQ(c.data[1], "line1\r\n--Xynot-a-boundary\r\n\r\n--Xy\r\n");
  EXPECT_EQ(c.ends, 2);
}

TEST(Multipart, SameResultForEverySplit) {
  for (std::size_t step : {1u, 2u, 3u, 5u, 7u, 13u}) {
    Collected c;
    MultipartParser p("XyZ", c.callbacks());
    for (std::size_t i = 0; i < kBody.size(); i += step) p.feed(kBody.substr(i, step));
    p.finish();
    ASSERT_EQ(c.parts.size(), 2u) << step;
    EXPECT_EQ(c.data[0], "hello") << step;
    EXPECT_EQ(c.data[1], "line1\r\n--Xynot-a-boundary\r\n\r\n--Xy\r\n") << step;
  }
}

TEST(Multipart, BodyStartingWithBoundaryAndEmptyFile) {
  Collected c;
  MultipartParser p("b", c.callbacks());
  p.feed("--b\r\nContent-Disposition: form-data; name=file; filename=e.txt\r\n\r\n\r\n--b--");
  p.finish();
  ASSERT_EQ(c.parts.size(), 1u);
  EXPECT_EQ(c.parts[0].filename, "e.txt");
  EXPECT_EQ(c.data[0], "");
}

TEST(Multipart, RefusesMalformedInput) {
  Collected c;
  auto cb = c.callbacks();
  EXPECT_THROW(MultipartParser("", cb), Error);
  EXPECT_THROW(MultipartParser(std::string(71, 'x'), cb), Error);
  {
    MultipartParser p("b", cb);
    p.feed("--b\r\nContent-Disposition: form-data; name=file\r\n\r\nunterminated");
    EXPECT_THROW(p.finish(), Error);
  }
  {
    MultipartParser p("b", cb);
    EXPECT_THROW(p.feed("--b\r\nX-No-Disposition: 1\r\n\r\ndata\r\n--b--"), Error);
  }
  {
    MultipartParser p("b", cb);
    EXPECT_THROW(p.feed("--bjunk"), Error);
  }
  {
    MultipartParser p("b", cb, 64);
    EXPECT_THROW(p.feed("--b\r\nContent-Disposition: form-data; name=\"" + std::string(100, 'a')), Error);
  }
  {
    MultipartParser p("b", cb, 8192, 2);
    std::string many;
    for (int i = 0; i < 3; ++i) many += "--b\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n";
    EXPECT_THROW(p.feed(many), Error);
  }
}

TEST(Multipart, BoundaryFromContentType) {
  EXPECT_EQ(multipart_boundary("multipart/form-data; boundary=abc"), "abc");
  EXPECT_EQ(multipart_boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\""), "a b");
  EXPECT_FALSE(multipart_boundary("application/json"));
  EXPECT_FALSE(multipart_boundary("multipart/form-data"));
  EXPECT_FALSE(multipart_boundary("multipart/form-data; boundary="));
}

}  // namespace
}  // namespace sandbox::server
