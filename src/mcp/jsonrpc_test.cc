#include "mcp/jsonrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace airlock::mcp {
namespace {

using namespace std::string_literals;

constexpr size_t kBig = 1 << 20;

ParseFailure Refused(std::string_view text, size_t max_bytes = kBig) {
  ParseResult r = Parse(text, max_bytes);
  EXPECT_FALSE(r.message.has_value()) << text;
  return r.failure;
}

Message Accepted(std::string_view text, size_t max_bytes = kBig) {
  ParseResult r = Parse(text, max_bytes);
  EXPECT_TRUE(r.message.has_value()) << text << " -> " << r.failure.message;
  return r.message.value_or(Message{});
}

std::string Nested(int levels, std::string_view open, std::string_view close) {
  std::string s;
  for (int i = 0; i < levels; ++i) s += open;
  s += "0";
  for (int i = 0; i < levels; ++i) s += close;
  return s;
}

// ---- Valid messages -------------------------------------------------------------------------

TEST(JsonRpcParse, RequestWithIntegerIdAndObjectParams) {
  Message m =
      Accepted(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"},"x":1})");
  EXPECT_EQ(m.type, Message::Type::kRequest);
  EXPECT_TRUE(m.IsRequest());
  EXPECT_EQ(m.id, Json(7));
  EXPECT_EQ(m.method, "tools/call");
  EXPECT_EQ(m.params, Json({{"name", "echo"}}));
  EXPECT_TRUE(m.result.is_null());
  EXPECT_EQ(m.raw["x"], Json(1));  // extra members are kept
}

TEST(JsonRpcParse, RequestIdsMayBeStringsOrAnyInteger) {
  EXPECT_EQ(Accepted(R"({"jsonrpc":"2.0","id":"abc","method":"ping"})").id, Json("abc"));
  EXPECT_EQ(Accepted(R"({"jsonrpc":"2.0","id":"","method":"ping"})").id, Json(""));
  EXPECT_EQ(Accepted(R"({"jsonrpc":"2.0","id":-5,"method":"ping"})").id, Json(-5));
  Message big = Accepted(R"({"jsonrpc":"2.0","id":18446744073709551615,"method":"ping"})");
  EXPECT_TRUE(big.id.is_number_unsigned());
  EXPECT_EQ(big.id.get<uint64_t>(), UINT64_MAX);
}

TEST(JsonRpcParse, RequestWithoutParamsOrWithArrayParams) {
  Message m = Accepted(R"({"jsonrpc":"2.0","id":1,"method":"ping"})");
  EXPECT_TRUE(m.params.is_null());
  m = Accepted(R"({"jsonrpc":"2.0","id":1,"method":"sum","params":[1,2]})");
  EXPECT_EQ(m.params, Json::array({1, 2}));
}

TEST(JsonRpcParse, Notification) {
  Message m = Accepted(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  EXPECT_EQ(m.type, Message::Type::kNotification);
  EXPECT_TRUE(m.IsNotification());
  EXPECT_TRUE(m.id.is_null());
  EXPECT_EQ(m.method, "notifications/initialized");
}

TEST(JsonRpcParse, ResultResponse) {
  Message m = Accepted(R"({"jsonrpc":"2.0","id":"r1","result":{"tools":[]}})");
  EXPECT_EQ(m.type, Message::Type::kResponse);
  EXPECT_TRUE(m.IsResponse());
  EXPECT_EQ(m.id, Json("r1"));
  EXPECT_EQ(m.result, Json({{"tools", Json::array()}}));
  // A null result is still a result (JSON-RPC allows any value).
  EXPECT_EQ(Accepted(R"({"jsonrpc":"2.0","id":2,"result":null})").type, Message::Type::kResponse);
}

TEST(JsonRpcParse, ErrorResponse) {
  Message m = Accepted(
      R"({"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no","data":{"m":"x"}}})");
  EXPECT_EQ(m.type, Message::Type::kError);
  EXPECT_TRUE(m.IsResponse());
  EXPECT_EQ(m.id, Json(3));
  EXPECT_EQ(m.error["code"], Json(-32601));
  EXPECT_EQ(m.error["data"]["m"], Json("x"));
}

TEST(JsonRpcParse, WhitespaceAroundTheObjectAndUnicodeAreFine) {
  Message m =
      Accepted(" \t{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"s\":\"é😀\\u00e9\"}}\r\n ");
  EXPECT_EQ(m.params["s"], Json("é😀é"));
}

// ---- Size, syntax, encoding -----------------------------------------------------------------

TEST(JsonRpcParse, OverMaxBytesIsMessageTooLarge) {
  const std::string msg = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
  EXPECT_TRUE(Parse(msg, msg.size()).message.has_value());
  ParseFailure f = Refused(msg, msg.size() - 1);
  EXPECT_EQ(f.code, kMessageTooLarge);
  EXPECT_TRUE(f.id.is_null());  // not read: the text is not parsed at all
  EXPECT_TRUE(f.answerable);
}

TEST(JsonRpcParse, NotJsonIsParseErrorAnsweredWithNullId) {
  for (std::string_view text :
       {"", " ", "\r\n", "hello", "{", R"({"jsonrpc":"2.0","id":1,"method":"pi)",
        R"({"jsonrpc":"2.0","id":1,"method":"ping"}})", R"({"jsonrpc":"2.0",})", "{'a':1}",
        R"({"a":1} {"b":2})", R"({"a":1}/*c*/)", R"({"a":NaN})", R"({"a":1e999})"}) {
    ParseFailure f = Refused(text);
    EXPECT_EQ(f.code, kParseError) << text;
    EXPECT_TRUE(f.id.is_null()) << text;
    EXPECT_TRUE(f.answerable) << text;
  }
}

TEST(JsonRpcParse, BatchesAndNonObjectsAreInvalidRequests) {
  ParseFailure f = Refused(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])");
  EXPECT_EQ(f.code, kInvalidRequest);
  EXPECT_NE(f.message.find("batch"), std::string::npos);
  EXPECT_TRUE(f.answerable);
  EXPECT_EQ(Refused("[]").code, kInvalidRequest);
  for (std::string_view text : {"1", "-2.5", R"("2.0")", "null", "true"}) {
    EXPECT_EQ(Refused(text).code, kInvalidRequest) << text;
  }
}

TEST(JsonRpcParse, InvalidUtf8IsParseError) {
  const std::string cases[] = {
      "{\"jsonrpc\":\"2.0\",\"method\":\"a\xff\"}",             // a byte never valid in UTF-8
      "{\"jsonrpc\":\"2.0\",\"method\":\"\xc0\xaf\"}",          // overlong '/'
      "{\"jsonrpc\":\"2.0\",\"method\":\"\xed\xa0\x80\"}",      // an encoded surrogate
      "{\"jsonrpc\":\"2.0\",\"method\":\"\xe2\x82\"}",          // truncated sequence
      "{\"jsonrpc\":\"2.0\",\"method\":\"\xf4\x90\x80\x80\"}",  // above U+10FFFF
      "{\"jsonrpc\":\"2.0\",\"method\":\"n\"}\xff",             // after the object
      "{\"jsonrpc\":\"2.0\",\"method\":\"\\ud800\"}",           // an escaped lone surrogate
  };
  for (const std::string& text : cases) {
    EXPECT_EQ(Refused(text).code, kParseError) << text;
  }
}

TEST(JsonRpcParse, NulBytesAreParseErrorsEvenAfterTheObject) {
  // nlohmann stops at a NUL, so without an explicit check this would parse as the object.
  EXPECT_EQ(Refused("{\"jsonrpc\":\"2.0\",\"method\":\"n\"}\0{\"x\":1}"s).code, kParseError);
  EXPECT_EQ(Refused("{\"jsonrpc\":\"2.0\",\"method\":\"a\0b\"}"s).code, kParseError);
  EXPECT_EQ(Refused("\0"s).code, kParseError);
  // An escaped NUL is a valid character.
  EXPECT_EQ(Accepted(R"({"jsonrpc":"2.0","method":"a\u0000b"})").method, "a\0b"s);
}

TEST(JsonRpcParse, DeepNestingIsRefusedWithoutExhaustingTheStack) {
  for (auto [open, close] : {std::pair{"[", "]"}, std::pair{R"({"a":)", "}"}}) {
    std::string deep =
        R"({"jsonrpc":"2.0","id":1,"method":"m","params":)" + Nested(10000, open, close) + "}";
    EXPECT_EQ(Refused(deep).code, kParseError);
    std::string unclosed(100000, '[');
    EXPECT_EQ(Refused(unclosed).code, kParseError);
  }
  // 64 levels in all (the message object is the first) pass; 65 do not.
  auto with_params = [](int levels) {
    return R"({"jsonrpc":"2.0","id":1,"method":"m","params":)" + Nested(levels, "[", "]") + "}";
  };
  EXPECT_TRUE(Parse(with_params(63), kBig).message.has_value());
  EXPECT_EQ(Refused(with_params(64)).code, kParseError);
}

TEST(JsonRpcParse, HugeStringsUnderTheCapPass) {
  std::string text(4 << 20, 'x');
  Message m =
      Accepted(R"({"jsonrpc":"2.0","method":"n","params":{"s":")" + text + "\"}}", 8 << 20);
  EXPECT_EQ(m.params["s"].get_ref<const std::string&>().size(), text.size());
  EXPECT_EQ(
      Refused(R"({"jsonrpc":"2.0","method":"n","params":{"s":")" + text + "\"}}", 4 << 20).code,
      kMessageTooLarge);
}

// ---- Shape ----------------------------------------------------------------------------------

TEST(JsonRpcParse, JsonrpcMustBeExactly2_0) {
  for (std::string_view text :
       {R"({"id":1,"method":"ping"})", R"({"jsonrpc":"1.0","id":1,"method":"ping"})",
        R"({"jsonrpc":2.0,"id":1,"method":"ping"})", R"({"jsonrpc":"2.0 ","id":1,"method":"p"})",
        R"({"jsonrpc":null,"id":1,"method":"ping"})"}) {
    ParseFailure f = Refused(text);
    EXPECT_EQ(f.code, kInvalidRequest) << text;
    EXPECT_EQ(f.id, Json(1)) << text;  // readable, so the error reply can name the request
    EXPECT_TRUE(f.answerable) << text;
  }
}

TEST(JsonRpcParse, BadIdsAreRefusedAndAnsweredWithNullId) {
  for (std::string_view id : {"null", "1.5", "1.0", "-0.0", "1e3", "18446744073709551616", "{}",
                              "[]", "true", "[1]", R"({"a":1})"}) {
    std::string text = R"({"jsonrpc":"2.0","method":"ping","id":)" + std::string(id) + "}";
    ParseFailure f = Refused(text);
    EXPECT_EQ(f.code, kInvalidRequest) << text;
    EXPECT_TRUE(f.id.is_null()) << text;
    EXPECT_TRUE(f.answerable) << text;
  }
}

TEST(JsonRpcParse, MethodMustBeAString) {
  ParseFailure f = Refused(R"({"jsonrpc":"2.0","id":"q","method":5})");
  EXPECT_EQ(f.code, kInvalidRequest);
  EXPECT_EQ(f.id, Json("q"));
  // JSON-RPC's own example: {"method": 1} without an id is answered (with a null id).
  f = Refused(R"({"jsonrpc":"2.0","method":1,"params":"bar"})");
  EXPECT_TRUE(f.answerable);
  EXPECT_TRUE(f.id.is_null());
}

TEST(JsonRpcParse, MissingMethodResultAndErrorIsInvalidRequest) {
  ParseFailure f = Refused(R"({"jsonrpc":"2.0","id":4})");
  EXPECT_EQ(f.code, kInvalidRequest);
  EXPECT_EQ(f.id, Json(4));
  EXPECT_TRUE(f.answerable);
  EXPECT_EQ(Refused(R"({})").code, kInvalidRequest);
}

TEST(JsonRpcParse, ParamsMustBeAnObjectOrAnArray) {
  for (std::string_view params : {R"("s")", "1", "null", "true"}) {
    ParseFailure f =
        Refused(R"({"jsonrpc":"2.0","id":9,"method":"m","params":)" + std::string(params) + "}");
    EXPECT_EQ(f.code, kInvalidRequest) << params;
    EXPECT_EQ(f.id, Json(9));
    EXPECT_TRUE(f.answerable);
  }
}

TEST(JsonRpcParse, BadNotificationsAreNotAnswerable) {
  for (std::string_view text :
       {R"({"jsonrpc":"2.0","method":"n","params":"s"})", R"({"jsonrpc":"1.0","method":"n"})",
        R"({"method":"n"})", R"({"jsonrpc":"2.0","method":"n","a":1,"a":2})"}) {
    ParseFailure f = Refused(text);
    EXPECT_EQ(f.code, kInvalidRequest) << text;
    EXPECT_FALSE(f.answerable) << text;
    EXPECT_TRUE(f.id.is_null()) << text;
  }
}

TEST(JsonRpcParse, ResultAndErrorTogetherAreRefusedButNotAnswered) {
  ParseFailure f =
      Refused(R"({"jsonrpc":"2.0","id":5,"result":{},"error":{"code":1,"message":"m"}})");
  EXPECT_EQ(f.code, kInvalidRequest);
  EXPECT_EQ(f.id, Json(5));  // so the gateway can fail request 5 instead of hanging it
  EXPECT_FALSE(f.answerable);
}

TEST(JsonRpcParse, ErrorObjectNeedsIntegerCodeAndStringMessage) {
  for (std::string_view error :
       {R"({"message":"m"})", R"({"code":"1","message":"m"})", R"({"code":1.5,"message":"m"})",
        R"({"code":1})", R"({"code":1,"message":2})", R"("oops")", "null", "[]"}) {
    ParseFailure f = Refused(R"({"jsonrpc":"2.0","id":6,"error":)" + std::string(error) + "}");
    EXPECT_EQ(f.code, kInvalidRequest) << error;
    EXPECT_EQ(f.id, Json(6)) << error;
    EXPECT_FALSE(f.answerable) << error;
  }
}

TEST(JsonRpcParse, ResponsesNeedAValidId) {
  for (std::string_view text :
       {R"({"jsonrpc":"2.0","result":{}})", R"({"jsonrpc":"2.0","id":null,"result":{}})",
        R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"parse"}})",
        R"({"jsonrpc":"2.0","id":1.5,"result":{}})"}) {
    ParseFailure f = Refused(text);
    EXPECT_EQ(f.code, kInvalidRequest) << text;
    EXPECT_FALSE(f.answerable) << text;
  }
}

TEST(JsonRpcParse, MethodWithResultIsRefused) {
  ParseFailure f = Refused(R"({"jsonrpc":"2.0","id":1,"method":"m","result":{}})");
  EXPECT_EQ(f.code, kInvalidRequest);
  EXPECT_EQ(f.id, Json(1));
}

TEST(JsonRpcParse, RepeatedKeysAnywhereAreRefused) {
  // Top level: airlock would route by one "method", a first-key-wins upstream by the other.
  ParseFailure f =
      Refused(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"})");
  EXPECT_EQ(f.code, kInvalidRequest);
  EXPECT_EQ(f.id, Json(1));
  // In the arguments the policy inspects.
  EXPECT_EQ(Refused(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":)"
                    R"({"name":"send","arguments":[{"to":["a"],"to":["a","b","c"]}]}})")
                .code,
            kInvalidRequest);
  // The same key in sibling objects is fine.
  Accepted(R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":{"k":1},"b":{"k":2}}})");
}

// The parser's value, depth limit and repeated-key check, compared with nlohmann's own DOM
// parser driven by a callback (what Parse used before its SAX handler) on hostile texts.
TEST(JsonRpcParse, AgreesWithTheCallbackParser) {
  struct Reference {
    Json value;
    bool too_deep = false;
    bool duplicate_key = false;
  };
  auto reference = [](std::string_view text) {
    Reference out;
    std::vector<size_t> keys;
    Json::parser_callback_t cb = [&](int depth, Json::parse_event_t event, Json& parsed) {
      if (out.too_deep) return false;
      if (event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) {
        if (depth >= 64) {
          out.too_deep = true;
          return false;
        }
        if (event == Json::parse_event_t::object_start) keys.push_back(0);
      } else if (event == Json::parse_event_t::key) {
        ++keys.back();
      } else if (event == Json::parse_event_t::object_end) {
        if (keys.back() != parsed.size()) out.duplicate_key = true;
        keys.pop_back();
      }
      return true;
    };
    out.value = Json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
    return out;
  };
  const std::string params[] = {
      "{}",
      "[]",
      R"({"a":1})",
      R"([1,2.5,-3,1e400,18446744073709551615,-9223372036854775808])",
      R"({"name":"echo","arguments":{"message":"hi","n":[null,true,false,{"x":{}}]}})",
      R"({"a":1,"a":2})",
      R"({"a":{"b":1,"b":{"c":1}}})",
      R"([{"k":1},{"k":1,"k":2}])",
      R"({"":1,"":2})",
      R"({"a":1,"b":2,"a":3})",
      R"({"a":[],"b":{},"c":""})",
      R"({"s":"\u00e9\ud83d\ude00\u0000\"\\\/\b\f\n\r\t"})",
      "{\"s\":\"caf\xc3\xa9\"}",
      "{\"s\":\"bad\xff\"}",
      "{\"s\":\"\xed\xa0\x80\"}",
      R"({"s":"\ud800"})",
      "[1,]",
      "{\"a\":}",
      "{\"a\" 1}",
      "[1 2]",
      "tru",
      "nul",
      "01",
      "1.",
      "-",
      "\"unterminated",
      R"({"a":1}/*c*/)",
      "[[[[[]]]]]",
      Nested(62, "[", "]"),
      Nested(63, "[", "]"),
      Nested(64, "[", "]"),
      Nested(63, R"({"a":)", "}"),
      Nested(64, R"({"a":)", "}"),
      Nested(70, "[", "]") + "garbage",
      Nested(63, "[", "]").substr(0, 100),
      "[" + Nested(63, R"({"k":1,"k":)", "}") + "]"};
  std::vector<std::pair<std::string, bool>> texts;  // the text, whether it is a valid message
  for (const std::string& p : params) {
    texts.emplace_back(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":)" + p + "}",
                       true);
    texts.emplace_back(R"({"params":)" + p + R"(,"jsonrpc":"2.0","id":"x","method":"m"})", true);
    texts.emplace_back(R"({"jsonrpc":"2.0","id":7,"result":)" + p + "}", true);
    texts.emplace_back(R"({"jsonrpc":"2.0","id":7,"result":)" + p + "} x", true);
    texts.emplace_back(R"({"jsonrpc":"2.0","id":7,"result":)" + p + "}  \t\r\n", true);
    texts.emplace_back(p, false);
  }
  for (const auto& [text, valid_message] : texts) {
    const Reference ref = reference(text);
    ParseResult r = Parse(text, kBig);
    if (ref.too_deep) {
      ASSERT_FALSE(r.message) << text;
      EXPECT_EQ(r.failure.code, kParseError) << text;
      EXPECT_NE(r.failure.message.find("deeper"), std::string::npos) << text;
    } else if (ref.value.is_discarded()) {
      ASSERT_FALSE(r.message) << text;
      EXPECT_EQ(r.failure.code, kParseError) << text;
      EXPECT_EQ(r.failure.message, "not valid JSON or not UTF-8") << text;
    } else if (!ref.value.is_object()) {
      ASSERT_FALSE(r.message) << text;
      EXPECT_EQ(r.failure.code, kInvalidRequest) << text;
    } else if (ref.duplicate_key) {
      ASSERT_FALSE(r.message) << text;
      EXPECT_EQ(r.failure.code, kInvalidRequest) << text;
      if (valid_message) {
        EXPECT_EQ(r.failure.message, "an object has a repeated key") << text;
      }
    } else if (valid_message) {
      ASSERT_TRUE(r.message) << text << ": " << r.failure.message;
      EXPECT_EQ(r.message->raw, ref.value) << text;
      EXPECT_EQ(Serialize(r.message->raw), Serialize(ref.value)) << text;
    } else {
      ASSERT_FALSE(r.message) << text;
      EXPECT_EQ(r.failure.code, kInvalidRequest) << text;
    }
  }
  // A repeated key keeps its last value, as the callback parser did: here "jsonrpc" is read
  // as "2.0" (then the repetition is refused), where a first-key parser would read "1.0".
  EXPECT_EQ(Refused(R"({"jsonrpc":"1.0","jsonrpc":"2.0","id":1,"method":"m"})").message,
            "an object has a repeated key");
  EXPECT_EQ(Refused(R"({"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"method":"m"})").message,
            "\"jsonrpc\" must be \"2.0\"");
}

TEST(JsonRpcParse, NeverThrowsOnHostileShapes) {
  const std::string hostile[] = {
      R"({"jsonrpc":["2.0"],"id":{"x":[]},"method":{},"params":1,"result":[],"error":3})",
      R"({"jsonrpc":"2.0","id":[],"error":{"code":{},"message":[]}})",
      R"({"jsonrpc":"2.0","id":true,"result":1})",
      R"({"jsonrpc":{},"method":[]})",
      R"({"jsonrpc":"2.0","id":"1","error":{"code":18446744073709551615,"message":""}})",
  };
  for (const std::string& text : hostile) {
    EXPECT_NO_THROW({
      ParseResult r = Parse(text, kBig);
      (void)r;
    }) << text;
  }
}

// ---- Serialize and the builders -------------------------------------------------------------

TEST(JsonRpcSerialize, RoundTripsEveryMessageType) {
  const std::string messages[] = {
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"a":[1,2.5,"x",null,true]}})",
      R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":0.5}})",
      R"({"jsonrpc":"2.0","id":"s","result":{"content":[{"type":"text","text":"hi\nthere"}]}})",
      R"({"jsonrpc":"2.0","id":-1,"error":{"code":-32602,"message":"bad","data":[1]}})",
  };
  for (const std::string& text : messages) {
    Message m = Accepted(text);
    std::string line = Serialize(m.raw);
    Message again = Accepted(line);
    EXPECT_EQ(again.raw, m.raw);
    EXPECT_EQ(again.type, m.type);
    EXPECT_EQ(again.id, m.id);
  }
}

TEST(JsonRpcSerialize, OutputIsOneLineWhateverTheStrings) {
  Json j = MakeResult(
      1,
      {{"text", "a\nb\rc\u2028d\x01\x1f\te\0f"s}, {"k\ny", "\"\\"}, {"n", Json::array({"\n\n"})}});
  std::string line = Serialize(j);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_EQ(line.find('\0'), std::string::npos);
  EXPECT_EQ(Accepted(line).raw, j);
}

TEST(JsonRpcSerialize, InvalidUtf8InMemoryIsReplacedNotThrown) {
  Json j = MakeNotification("n", {{"s", "ok\xff\xc0"}});
  std::string line;
  EXPECT_NO_THROW(line = Serialize(j));
  Message m = Accepted(line);
  const std::string& s = m.params["s"].get_ref<const std::string&>();
  EXPECT_EQ(s.rfind("ok\xEF\xBF\xBD", 0), 0u) << s;  // U+FFFD in place of the bad bytes
}

TEST(JsonRpcSerialize, BuildersMakeValidMessages) {
  Message r = Accepted(Serialize(MakeRequest(3, "tools/list", nullptr)));
  EXPECT_EQ(r.type, Message::Type::kRequest);
  EXPECT_FALSE(r.raw.contains("params"));
  r = Accepted(Serialize(MakeRequest("x", "tools/call", {{"name", "e"}})));
  EXPECT_EQ(r.params["name"], Json("e"));

  Message n = Accepted(Serialize(MakeNotification("notifications/cancelled", {{"requestId", 3}})));
  EXPECT_EQ(n.type, Message::Type::kNotification);
  EXPECT_FALSE(n.raw.contains("id"));

  Message res = Accepted(Serialize(MakeResult(3, Json::object())));
  EXPECT_EQ(res.type, Message::Type::kResponse);

  Json e = MakeError(3, kMethodNotFound, "no such method");
  EXPECT_EQ(e["error"]["code"], Json(-32601));
  EXPECT_FALSE(e["error"].contains("data"));
  EXPECT_EQ(Accepted(Serialize(e)).type, Message::Type::kError);
  e = MakeError(3, kInvalidParams, "bad", {{"field", "to"}});
  EXPECT_EQ(e["error"]["data"]["field"], Json("to"));

  // The exact bytes a client and a server get.
  EXPECT_EQ(
      Serialize(MakeRequest(7, "tools/call", {{"name", "e"}, {"arguments", {{"m", "\n"}}}})),
      R"({"id":7,"jsonrpc":"2.0","method":"tools/call","params":{"arguments":{"m":"\n"},"name":"e"}})");
  EXPECT_EQ(Serialize(MakeResult("x\"", {{"content", Json::array()}, {"isError", false}})),
            R"({"id":"x\"","jsonrpc":"2.0","result":{"content":[],"isError":false}})");
  EXPECT_EQ(Serialize(MakeResult(1, nullptr)), R"({"id":1,"jsonrpc":"2.0","result":null})");
}

TEST(JsonRpcSerialize, ErrorWithUnknownIdOmitsTheId) {
  // MCP's schema accepts an error without id, and refuses "id": null.
  Json e = MakeError(nullptr, kParseError, "not valid JSON");
  EXPECT_FALSE(e.contains("id"));
  EXPECT_EQ(e["jsonrpc"], Json("2.0"));
  EXPECT_EQ(e["error"]["message"], Json("not valid JSON"));
}

// ---- ScanResponse / SpliceId ---------------------------------------------------------------

// Whatever ScanResponse passes, Parse takes as a response with that id; the splice changes
// the id and nothing else.
void ExpectSplices(std::string_view text, int64_t id) {
  std::optional<ResponseShape> shape = ScanResponse(text, kBig);
  ASSERT_TRUE(shape.has_value()) << text;
  EXPECT_EQ(shape->id, id) << text;
  Message m = Accepted(text);
  ASSERT_EQ(m.type, Message::Type::kResponse) << text;
  EXPECT_EQ(m.id, Json(id));
  for (const Json& client_id : {Json(7), Json("req \"7\" \u00e9"), Json(-3)}) {
    const std::string spliced = SpliceId(text, *shape, client_id.dump());
    Message again = Accepted(spliced);
    ASSERT_EQ(again.type, Message::Type::kResponse) << spliced;
    EXPECT_EQ(again.id, client_id) << spliced;
    Json expected = m.raw;
    expected["id"] = client_id;
    EXPECT_EQ(again.raw, expected) << spliced;
  }
}

void ExpectUnsure(std::string_view text, size_t max_bytes = kBig) {
  EXPECT_FALSE(ScanResponse(text, max_bytes).has_value()) << text;
}

TEST(JsonRpcScanResponse, FindsTheTopLevelIdWhereverItIs) {
  ExpectSplices(
      R"({"result":{"content":[{"type":"text","text":"Echo: hi"}]},"jsonrpc":"2.0","id":5})", 5);
  ExpectSplices(R"({"jsonrpc":"2.0","id":0,"result":null})", 0);
  ExpectSplices(R"(  { "id" : 123456789012 , "result" : [ 1, "}" ] , "jsonrpc" : "2.0" }  )",
                123456789012);
  ExpectSplices("{\t\"jsonrpc\":\"2.0\",\t\"result\":{},\"id\":-9}", -9);
  // Ids and braces inside strings and nested objects are not the top level's.
  ExpectSplices(
      R"({"result":{"id":99,"t":"\"id\":5,{[","a":[{"id":1}],"x":{"y\"":{"id":2}}},"jsonrpc":"2.0","id":3})",
      3);
  // An escape in a top-level key leaves it to Parse, whatever the key.
  ExpectUnsure(R"({"x\"y":1,"jsonrpc":"2.0","id":3,"result":{}})");
  // Extra top-level members are left to Parse (the rebuilt reply drops them).
  ExpectUnsure(R"({"jsonrpc":"2.0","id":8,"result":{},"_meta":{"k":"v"}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":8,"params":[1],"result":{}})");
  ExpectSplices(R"({"jsonrpc":"2.0","id":9223372036854775807,"result":1})", INT64_MAX);
}

TEST(JsonRpcScanResponse, AnythingButAResultWithAnIntegerIdIsLeftToParse) {
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m"}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"method":"ping"})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"method":"x","result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","result":{}})");
  ExpectUnsure(R"({"id":1,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.1","id":1,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":2,"id":1,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":["2.0"],"id":1,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":"1","result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1.0,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1e2,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":-0,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":null,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":{"n":1},"result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":9223372036854775808,"result":{}})");
  ExpectUnsure(R"([{"jsonrpc":"2.0","id":1,"result":{}}])");
  ExpectUnsure(R"(1)");
  ExpectUnsure(R"("x")");
  ExpectUnsure("");
}

TEST(JsonRpcScanResponse, HostileTextIsNeverSpliced) {
  // Repeated keys, at the top and deeper: the client and the record could read different
  // values.
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"id":2,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"result":{"a":1,"a":2}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"result":{},"result":{}})");
  // A key written with an escape is the same key to a parser.
  ExpectUnsure(R"({"jsonrpc":"2.0","\u0069d":1,"result":{}})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"\u0069d":2,"result":{}})");
  ExpectUnsure(R"({"json\u0072pc":"2.0","id":1,"result":{}})");
  // Not JSON, not UTF-8, NUL, trailing bytes, comments, carriage returns, the cap.
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"result":{})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"result":{}} x)");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"result":{}} {})");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"result":/*c*/{}})");
  ExpectUnsure("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xC0\xAF\"}");
  ExpectUnsure("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xED\xA0\x80\"}");
  ExpectUnsure("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\0"s);
  ExpectUnsure("{\"jsonrpc\":\"2.0\",\"id\":1,\r\"result\":{}}");
  ExpectUnsure("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r");
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"result":{}})", 10);
  // Too deep for Parse is too deep here.
  const std::string deep = Nested(64, "[", "]");
  EXPECT_FALSE(Parse(R"({"jsonrpc":"2.0","id":1,"result":)" + deep + "}", kBig).message);
  ExpectUnsure(R"({"jsonrpc":"2.0","id":1,"result":)" + deep + "}");
  ExpectSplices(R"({"jsonrpc":"2.0","id":1,"result":)" + Nested(62, "[", "]") + "}", 1);
}

TEST(JsonRpcScanResponse, LargeObjectsAreLeftToParse) {
  std::string many = R"({"jsonrpc":"2.0","id":4,"result":{)";
  for (int i = 0; i < 65; ++i) many += (i ? "," : "") + ("\"k" + std::to_string(i) + "\":1");
  many += "}}";
  EXPECT_TRUE(Accepted(many).type == Message::Type::kResponse);
  ExpectUnsure(many);
}

// ---- LineReader -----------------------------------------------------------------------------

class Pipe {
 public:
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2: " << errno;
    read_fd = fds[0];
    write_fd = fds[1];
  }
  ~Pipe() {
    CloseRead();
    CloseWrite();
  }
  void Write(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::write(write_fd, s.data(), s.size());
      if (n < 0 && errno == EINTR) continue;
      ASSERT_GT(n, 0) << "write: " << errno;
      s.remove_prefix(static_cast<size_t>(n));
    }
  }
  void CloseWrite() {
    if (write_fd >= 0) ::close(write_fd);
    write_fd = -1;
  }
  void CloseRead() {
    if (read_fd >= 0) ::close(read_fd);
    read_fd = -1;
  }
  int read_fd = -1;
  int write_fd = -1;
};

// Every event until kEof or kError, as "L:<line>", "TOO_LONG", "EOF", "ERROR".
std::vector<std::string> Drain(LineReader& reader) {
  std::vector<std::string> events;
  for (;;) {
    std::string line;
    switch (reader.Next(&line)) {
      case LineReader::Event::kLine:
        events.push_back("L:" + line);
        break;
      case LineReader::Event::kTooLong:
        events.push_back("TOO_LONG");
        break;
      case LineReader::Event::kEof:
        events.push_back("EOF");
        return events;
      case LineReader::Event::kError:
        events.push_back("ERROR");
        return events;
    }
  }
}

using Events = std::vector<std::string>;

TEST(LineReader, SeveralLinesInOneWrite) {
  Pipe p;
  p.Write("{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
  p.CloseWrite();
  LineReader reader(p.read_fd, 1024);
  EXPECT_EQ(Drain(reader), (Events{"L:{\"a\":1}", "L:{\"b\":2}", "L:{\"c\":3}", "EOF"}));
}

TEST(LineReader, LineSplitAcrossWrites) {
  Pipe p;
  LineReader reader(p.read_fd, 1024);
  std::thread writer([&] {
    p.Write("{\"jsonrpc\":");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p.Write("\"2.0\"}\nsec");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p.Write("ond\n");
    p.CloseWrite();
  });
  Events events = Drain(reader);
  writer.join();
  EXPECT_EQ(events, (Events{"L:{\"jsonrpc\":\"2.0\"}", "L:second", "EOF"}));
}

TEST(LineReader, TooLongLineIsReportedOnceAndTheStreamSurvives) {
  Pipe p;
  p.Write(std::string(100, 'x') + "\nok\n" + std::string(17, 'y') + "\n" + std::string(16, 'z') +
          "\n");
  p.CloseWrite();
  LineReader reader(p.read_fd, 16);
  EXPECT_EQ(Drain(reader),
            (Events{"TOO_LONG", "L:ok", "TOO_LONG", "L:" + std::string(16, 'z'), "EOF"}));
}

TEST(LineReader, TooLongLineOverManyReads) {
  Pipe p;
  LineReader reader(p.read_fd, 1000);
  // 3 MiB without a newline, in pieces, then a good line: the reader reports the long line
  // as soon as it passes the cap, before the writer has finished it.
  std::thread writer([&] {
    std::string piece(100 * 1024, 'a');
    for (int i = 0; i < 30; ++i) p.Write(piece);
    p.Write("\n{\"after\":true}\n");
    p.CloseWrite();
  });
  Events events = Drain(reader);
  writer.join();
  EXPECT_EQ(events, (Events{"TOO_LONG", "L:{\"after\":true}", "EOF"}));
}

TEST(LineReader, StripsOneTrailingCarriageReturn) {
  Pipe p;
  p.Write("a\r\nb\r\r\n\r\nc\n");
  p.CloseWrite();
  LineReader reader(p.read_fd, 1024);
  EXPECT_EQ(Drain(reader), (Events{"L:a", "L:b\r", "L:c", "EOF"}));
}

TEST(LineReader, ExactlyMaxBytesWithCrlfPassesOneMoreDoesNot) {
  Pipe p;
  p.Write(std::string(8, 'a') + "\r\n" + std::string(9, 'b') + "\r\n" + "end\n");
  p.CloseWrite();
  LineReader reader(p.read_fd, 8);
  EXPECT_EQ(Drain(reader), (Events{"L:" + std::string(8, 'a'), "TOO_LONG", "L:end", "EOF"}));
}

TEST(LineReader, FinalLineWithoutNewlineIsReturnedBeforeEof) {
  Pipe p;
  p.Write("first\nlast");
  p.CloseWrite();
  LineReader reader(p.read_fd, 1024);
  EXPECT_EQ(Drain(reader), (Events{"L:first", "L:last", "EOF"}));
  std::string line;
  EXPECT_EQ(reader.Next(&line), LineReader::Event::kEof);  // and stays at the end
}

TEST(LineReader, TooLongFinalLineWithoutNewline) {
  Pipe p;
  p.Write("ok\n" + std::string(20, 'x'));
  p.CloseWrite();
  LineReader reader(p.read_fd, 10);
  EXPECT_EQ(Drain(reader), (Events{"L:ok", "TOO_LONG", "EOF"}));
}

TEST(LineReader, EmptyLinesAreSkipped) {
  Pipe p;
  p.Write("\n\n\r\na\n\n\nb\n\n");
  p.CloseWrite();
  LineReader reader(p.read_fd, 1024);
  EXPECT_EQ(Drain(reader), (Events{"L:a", "L:b", "EOF"}));
}

TEST(LineReader, EmptyInputIsEof) {
  Pipe p;
  p.CloseWrite();
  LineReader reader(p.read_fd, 1024);
  EXPECT_EQ(Drain(reader), (Events{"EOF"}));
}

TEST(LineReader, ManyLinesAcrossChunkBoundaries) {
  Pipe p;
  LineReader reader(p.read_fd, 5000);
  std::vector<std::string> sent;
  for (int i = 0; i < 2000; ++i)
    sent.push_back(std::string(1 + (i * 37) % 4000, static_cast<char>('a' + i % 26)));
  std::thread writer([&] {
    std::string all;
    for (const std::string& s : sent) all += s + "\n";
    p.Write(all);
    p.CloseWrite();
  });
  Events events = Drain(reader);
  writer.join();
  ASSERT_EQ(events.size(), sent.size() + 1);
  for (size_t i = 0; i < sent.size(); ++i) ASSERT_EQ(events[i], "L:" + sent[i]) << i;
  EXPECT_EQ(events.back(), "EOF");
}

TEST(LineReader, ReadErrorIsReportedWithErrno) {
  Pipe p;
  LineReader reader(p.write_fd, 1024);  // the write end cannot be read
  std::string line;
  EXPECT_EQ(reader.Next(&line), LineReader::Event::kError);
  EXPECT_EQ(reader.error(), EBADF);
}

// ---- WriteLine ------------------------------------------------------------------------------

TEST(JsonRpcWriteLine, WritesTheLineAndANewline) {
  Pipe p;
  ASSERT_TRUE(WriteLine(p.write_fd, Serialize(MakeRequest(1, "ping", nullptr))));
  ASSERT_TRUE(WriteLine(p.write_fd, Serialize(MakeResult(1, {{"t", "a\nb"}}))));
  p.CloseWrite();
  LineReader reader(p.read_fd, 1024);
  std::string line;
  ASSERT_EQ(reader.Next(&line), LineReader::Event::kLine);
  EXPECT_EQ(Accepted(line).method, "ping");
  ASSERT_EQ(reader.Next(&line), LineReader::Event::kLine);
  EXPECT_EQ(Accepted(line).result["t"], Json("a\nb"));
  EXPECT_EQ(reader.Next(&line), LineReader::Event::kEof);
}

TEST(JsonRpcWriteLine, LargeLineSurvivesShortWrites) {
  Pipe p;
  // Bigger than the pipe buffer: writev returns short counts while the reader drains.
  std::string big = Serialize(MakeNotification("n", {{"s", std::string(3 << 20, 'q')}}));
  std::string received;
  std::thread reader_thread([&] {
    LineReader reader(p.read_fd, 8 << 20);
    std::string line;
    if (reader.Next(&line) == LineReader::Event::kLine) received = line;
  });
  EXPECT_TRUE(WriteLine(p.write_fd, big));
  p.CloseWrite();
  reader_thread.join();
  EXPECT_EQ(received, big);
}

TEST(JsonRpcWriteLine, ClosedReaderIsFalseNotACrash) {
  Pipe p;
  p.CloseRead();
  // Block SIGPIPE in this thread only; take the pending signal afterwards.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &pipe_set, &old), 0);
  EXPECT_FALSE(WriteLine(p.write_fd, "{}"));
  const timespec zero = {0, 0};
  while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_FALSE(WriteLine(-1, "{}"));
}

}  // namespace
}  // namespace airlock::mcp
