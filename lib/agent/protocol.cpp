#include "agent/protocol.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/error.hpp"

namespace sandbox::agent {
namespace {

void put_u32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

}  // namespace

std::string encode(Type type, std::uint32_t id, std::string_view payload, std::uint8_t stream) {
  std::string out(header_size + payload.size(), '\0');
  put_u32(out.data(), static_cast<std::uint32_t>(payload.size()));
  out[4] = static_cast<char>(type);
  out[5] = static_cast<char>(stream);
  put_u32(out.data() + 8, id);
  std::memcpy(out.data() + header_size, payload.data(), payload.size());
  return out;
}

std::optional<Frame> Decoder::next() {
  if (buf_.size() - pos_ < header_size) return std::nullopt;
  const char* h = buf_.data() + pos_;
  std::uint32_t len = get_u32(h);
  if (len > max_payload) throw Error(errc::internal, "agent frame too large");
  if (buf_.size() - pos_ < header_size + len) return std::nullopt;
  Frame f;
  f.type = static_cast<Type>(static_cast<unsigned char>(h[4]));
  f.stream = static_cast<std::uint8_t>(h[5]);
  f.id = get_u32(h + 8);
  f.payload.assign(h + header_size, len);
  pos_ += header_size + len;
  // Compact once the consumed prefix dominates, so the buffer never grows without bound.
  if (pos_ > 65536 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return f;
}

void write_frame(int fd, Type type, std::uint32_t id, std::string_view payload, std::uint8_t stream) {
  std::string bytes = encode(type, id, payload, stream);
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_syscall("write", errno, "agent frame");
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::optional<Frame> read_frame(int fd) {
  Decoder d;
  char buf[header_size];
  std::size_t got = 0;
  auto read_exact = [&](char* dst, std::size_t n) -> bool {
    std::size_t have = 0;
    while (have < n) {
      ssize_t r = ::read(fd, dst + have, n - have);
      if (r < 0) {
        if (errno == EINTR) continue;
        throw_syscall("read", errno, "agent frame");
      }
      if (r == 0) return false;
      have += static_cast<std::size_t>(r);
    }
    return true;
  };
  if (!read_exact(buf, header_size)) return std::nullopt;
  got = get_u32(buf);
  if (got > max_payload) throw Error(errc::internal, "agent frame too large");
  Frame f;
  f.type = static_cast<Type>(static_cast<unsigned char>(buf[4]));
  f.stream = static_cast<std::uint8_t>(buf[5]);
  f.id = get_u32(buf + 8);
  f.payload.resize(got);
  if (got && !read_exact(f.payload.data(), got)) return std::nullopt;
  return f;
}

}  // namespace sandbox::agent
