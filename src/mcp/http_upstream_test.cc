#include "mcp/http_upstream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace airlock::mcp {
namespace {

std::vector<std::string> FeedAll(HttpUpstream::SseParser& p, const std::vector<std::string>& chunks,
                                 bool* ok = nullptr) {
  std::vector<std::string> out;
  bool good = true;
  for (const auto& c : chunks) {
    good = p.Feed(c, [&](std::string d) { out.push_back(std::move(d)); }) && good;
  }
  if (ok) *ok = good;
  return out;
}

TEST(SseParser, OneEventPerBlankLine) {
  HttpUpstream::SseParser p(1 << 20);
  auto got = FeedAll(p, {"event: message\ndata: {\"a\":1}\n\ndata: {\"b\":2}\n\n"});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "{\"a\":1}");
  EXPECT_EQ(got[1], "{\"b\":2}");
}

TEST(SseParser, AnySlicingGivesTheSameEvents) {
  const std::string stream =
      "id: 7\r\ndata: {\"x\":\"y\"}\r\n\r\n: keep-alive\n\ndata:{\"z\":1}\n\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    HttpUpstream::SseParser p(1 << 20);
    auto got = FeedAll(p, {stream.substr(0, cut), stream.substr(cut)});
    ASSERT_EQ(got.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(got[0], "{\"x\":\"y\"}");
    EXPECT_EQ(got[1], "{\"z\":1}");
  }
}

TEST(SseParser, DataLinesAreJoinedAndCommentsSkipped) {
  HttpUpstream::SseParser p(1 << 20);
  auto got = FeedAll(p, {": hello\ndata: line one\ndata: line two\nretry: 10\n\n"});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], "line one\nline two");
}

TEST(SseParser, AnEventWithoutDataIsNoMessage) {
  HttpUpstream::SseParser p(1 << 20);
  EXPECT_TRUE(FeedAll(p, {"id: 1\nevent: message\n\n\n\n"}).empty());
}

TEST(SseParser, AnEventOverTheCapStopsTheStream) {
  HttpUpstream::SseParser p(64);
  bool ok = true;
  auto got = FeedAll(p, {"data: " + std::string(100, 'x') + "\n\n"}, &ok);
  EXPECT_FALSE(ok);
  EXPECT_TRUE(got.empty());
  HttpUpstream::SseParser q(64);
  ok = true;
  got = FeedAll(q, {"data: " + std::string(40, 'x'), std::string(40, 'y')}, &ok);
  EXPECT_FALSE(ok) << "a line that never ends is capped too";
}

TEST(HttpUpstream, RefusesUrlsThatAreNotHttp) {
  for (const char* url : {"file:///etc/passwd", "ftp://x/", "", "javascript:alert(1)"}) {
    HttpUpstreamOptions o;
    o.url = url;
    EXPECT_FALSE(HttpUpstream::Start(o).ok()) << url;
  }
}

TEST(HttpUpstream, AnUnreachableServerAnswersTheRequestWithAnError) {
  HttpUpstreamOptions o;
  o.url = "http://127.0.0.1:1/mcp";  // nothing listens on port 1
  auto up = HttpUpstream::Start(o);
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  ASSERT_TRUE((*up)->Send(MakeRequest(1, "initialize", Json::object())));
  std::string line;
  ASSERT_EQ((*up)->Receive(&line), LineReader::Event::kLine);
  ParseResult p = Parse(line, SIZE_MAX);
  ASSERT_TRUE(p.message.has_value()) << line;
  EXPECT_EQ(p.message->type, Message::Type::kError);
  EXPECT_EQ(p.message->id, 1);
  EXPECT_NE(line.find("cannot reach"), std::string::npos) << line;
  (*up)->Stop();
  EXPECT_EQ((*up)->Receive(&line), LineReader::Event::kEof);
  EXPECT_FALSE((*up)->Send(MakeNotification("x", nullptr)));
}

}  // namespace
}  // namespace airlock::mcp
