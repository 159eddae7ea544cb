#include "connectors/connector.h"
#include "connectors/http/http_connector.h"
#include "connectors/mcp/mcp_connector.h"
#include "connectors/postgres/postgres_connector.h"
#include "connectors/shell/shell_connector.h"
#include "connectors/smtp/smtp_connector.h"
#include "connectors/sqlite/sqlite_connector.h"

namespace airlock {

Result<std::unique_ptr<Connector>> CreateConnector(const ConnectorConfig& config) {
  // One line per connector kind.
  if (config.kind == "sqlite") return CreateSqliteConnector(config);
  if (config.kind == "shell") return CreateShellConnector(config);
  if (config.kind == "mcp") return CreateMcpConnector(config);
  if (config.kind == "smtp") return CreateSmtpConnector(config);
  if (config.kind == "postgres") return CreatePostgresConnector(config);
  if (config.kind == "http") return CreateHttpConnector(config);
  return Status::InvalidArgument("target '" + config.name + "': no connector for kind '" +
                                 config.kind + "'");
}

}  // namespace airlock
