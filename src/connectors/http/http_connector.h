// The HTTP target (`kind: http`): one action per request to one API.
//
// A request cannot be dry-run (the server would act), so its effect is the request itself:
// the method, the full URL, the canonical JSON body and the names (never the values) of the
// headers airlock adds, hashed over method, URL and body. Apply sends exactly that request
// once, after checking the hash. GET and HEAD are reads and are made at once; anything else
// cannot be undone by airlock and is recorded as irreversible.
//
// args: {"method": "POST", "path": "/v1/messages?x=1", "json"?: <any JSON>}.
// fields (policy/loader.cc): base_url, allow [..], headers {name: value-ref}, timeout_ms,
// max_response_bytes.
#pragma once

#include <memory>

#include "connectors/connector.h"

namespace airlock {

Result<std::unique_ptr<Connector>> CreateHttpConnector(const ConnectorConfig& config);

// What the store and the audit keep of a response: status, type, size and whether it was
// cut, never the body (it is production data; the caller gets it once).
Json HttpResultSummary(const Json& result);

}  // namespace airlock
