#include "mcp/http_upstream.h"

#include "net/http_test_util.h"

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

// The answer to initialize reaches the client while its event stream is still open, and a
// client sends its next request at once: that request must carry the session the answer
// opened. (The session was once taken only after the stream closed: a request sent in between
// went without it, and a real server answered 400.)
TEST(HttpUpstream, TheRequestRightAfterInitializeCarriesItsSession) {
  airlock::testing::HttpReceiver server([](int i) {
    airlock::testing::Reply r;
    if (i == 0) {
      r.content_type = "text/event-stream";
      r.extra_headers = "Mcp-Session-Id: s-1\r\n";
      r.body =
          "data: "
          "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-06-18\"}}\n\n";
      r.linger_ms = 300;
    } else {
      r.content_type = "application/json";
      r.body = "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}";
    }
    return r;
  });
  ASSERT_TRUE(server.ok());
  HttpUpstreamOptions o;
  o.url = server.Url("/mcp");
  auto up = HttpUpstream::Start(o);
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  ASSERT_TRUE((*up)->Send(MakeRequest(1, "initialize", Json::object())));
  std::string line;
  ASSERT_EQ((*up)->Receive(&line), LineReader::Event::kLine);
  EXPECT_NE(line.find("protocolVersion"), std::string::npos) << line;
  ASSERT_TRUE((*up)->Send(MakeRequest(2, "tools/list", Json::object())));
  ASSERT_EQ((*up)->Receive(&line), LineReader::Event::kLine);
  EXPECT_NE(line.find("\"id\":2"), std::string::npos) << line;
  const std::vector<airlock::testing::ReceivedRequest> got = server.requests();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].headers.count("mcp-session-id"), 0u);
  auto header = [&](const std::string& name) {
    auto it = got[1].headers.find(name);
    return it == got[1].headers.end() ? std::string("<none>") : it->second;
  };
  EXPECT_EQ(header("mcp-session-id"), "s-1");
  EXPECT_EQ(header("mcp-protocol-version"), "2025-06-18");
  (*up)->Stop();
}

}  // namespace
}  // namespace airlock::mcp
