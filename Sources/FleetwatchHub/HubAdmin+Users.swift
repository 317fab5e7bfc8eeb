import FleetwatchStorage
import Foundation
import Logging

extension HubAdmin {
    /// Creates a dashboard user.
    public func addUser(name: String, role: String, password: String) async throws {
        guard let r = AccessTokens.Role(rawValue: role) else { throw StorageError("role must be viewer or operator, not \(role)") }
        let logger = self.logger
        try await withDatabase { client in try await UserAccounts(client: client, logger: logger).add(name: name, role: r, password: password) }
    }

    /// Sets a user's password and ends their sessions.
    public func setUserPassword(name: String, password: String) async throws {
        let logger = self.logger
        let found = try await withDatabase { client in
            try await UserAccounts(client: client, logger: logger).setPassword(name: name, password: password)
        }
        guard found else { throw StorageError("no user named \(name) (monitor-hub users list)") }
    }

    /// Disables a user and ends their sessions (their open dashboards close on every replica).
    public func disableUser(name: String) async throws {
        let logger = self.logger
        let done = try await withDatabase { client in try await UserAccounts(client: client, logger: logger).disable(name: name) }
        guard done else { throw StorageError("no active user named \(name)") }
    }

    public func listUsers() async throws -> [UserAccounts.Listing] {
        let logger = self.logger
        return try await withDatabase { client in try await UserAccounts(client: client, logger: logger).list() }
    }
}
