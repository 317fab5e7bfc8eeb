/// One ordered schema migration, embedded from `schema/migrations/VNNNN__name.sql`.
public struct Migration: Sendable {
    /// Position in the order; recorded in `schema_migrations.version`.
    public let version: Int
    /// The file's name without number and extension.
    public let name: String
    /// The SQL, applied in one transaction.
    public let sql: String
}

/// The migrations of this build of the hub, in order.
public enum Schema {
    /// Every migration, in the order to apply them.
    public static let migrations: [Migration] = [
        Migration(version: 1, name: "foundation", sql: decode(PackageResources.V0001__foundation_sql)),
        Migration(version: 2, name: "alerts", sql: decode(PackageResources.V0002__alerts_sql)),
        Migration(version: 3, name: "commands", sql: decode(PackageResources.V0003__commands_sql)),
        Migration(version: 4, name: "review", sql: decode(PackageResources.V0004__review_sql)),
        Migration(version: 5, name: "dashboard", sql: decode(PackageResources.V0005__dashboard_sql)),
        Migration(version: 6, name: "bot_isolation", sql: decode(PackageResources.V0006__bot_isolation_sql)),
        Migration(version: 7, name: "fleet_profile", sql: decode(PackageResources.V0007__fleet_profile_sql)),
        Migration(version: 8, name: "analyst_password", sql: decode(PackageResources.V0008__analyst_password_sql)),
        Migration(version: 9, name: "minute_chunks", sql: decode(PackageResources.V0009__minute_chunks_sql)),
        Migration(version: 10, name: "review_fixes", sql: decode(PackageResources.V0010__review_fixes_sql)),
        Migration(version: 11, name: "row_ends", sql: decode(PackageResources.V0011__row_ends_sql)),
        Migration(version: 12, name: "merge_compression", sql: decode(PackageResources.V0012__merge_compression_sql)),
        Migration(version: 13, name: "lease_order", sql: decode(PackageResources.V0013__lease_order_sql)),
    ]

    /// The latest version this build knows.
    public static var latestVersion: Int { migrations.last?.version ?? 0 }

    private static func decode(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
