#include "agent/frame.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/error.hpp"

namespace sandbox::agent {

void put_u32le(char* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint32_t get_u32le(const char* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::string frame_bytes(std::string_view header, std::string_view payload) {
  std::string out(length_size + header.size() + payload.size(), '\0');
  put_u32le(out.data(), static_cast<std::uint32_t>(payload.size()));
  std::memcpy(out.data() + length_size, header.data(), header.size());
  std::memcpy(out.data() + length_size + header.size(), payload.data(), payload.size());
  return out;
}

std::optional<RawFrame> FrameReader::next() {
  const std::size_t head = length_size + header_size_;
  if (buf_.size() - pos_ < head) return std::nullopt;
  const char* h = buf_.data() + pos_;
  std::uint32_t len = get_u32le(h);
  if (len > max_payload_) throw Error(errc::internal, "agent frame too large");
  if (buf_.size() - pos_ - head < len) return std::nullopt;
  RawFrame f{std::string(h + length_size, header_size_), std::string(h + head, len)};
  pos_ += head + len;
  // Compact once the consumed prefix dominates, so the buffer never grows without bound;
  // drained, it gives back what one large frame made it take.
  if (pos_ == buf_.size()) {
    pos_ = 0;
    if (buf_.capacity() > (1u << 20)) std::string().swap(buf_);
    else buf_.clear();
  } else if (pos_ > 65536 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return f;
}

namespace {
// False at EOF before `n` bytes.
bool read_exact(int fd, char* dst, std::size_t n) {
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
}
}  // namespace

std::optional<RawFrame> read_raw_frame(int fd, std::size_t header_size, std::uint32_t max_payload) {
  char len[length_size];
  if (!read_exact(fd, len, length_size)) return std::nullopt;
  std::uint32_t n = get_u32le(len);
  RawFrame f;
  f.header.resize(header_size);
  if (header_size && !read_exact(fd, f.header.data(), header_size)) return std::nullopt;
  if (n > max_payload) throw Error(errc::internal, "agent frame too large");
  f.payload.resize(n);
  if (n && !read_exact(fd, f.payload.data(), n)) return std::nullopt;
  return f;
}

void write_all(int fd, std::string_view bytes) {
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

}  // namespace sandbox::agent
