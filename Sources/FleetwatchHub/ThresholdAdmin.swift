import FleetwatchAlerting
import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

/// Applies the configuration's threshold choice at start: the fleet's default profile, which every bot without
/// a profile of its own follows. Changes reach every replica's alert engine at once (NOTIFY).
struct ThresholdAdmin: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    /// The NOTIFY channel that tells every replica's alert engine to re-read rules.
    static let channel = PostgresProfileSource.channel

    /// `--config production|development` makes that built-in profile the fleet's default; a configuration file
    /// becomes the profile `custom` (its `monitoring.profile` base, its `thresholds`, its
    /// `monitoring.enable_emergency_shutdown`) and the default; no `--config` makes `default` the default.
    func applyConfigurationProfile(_ configuration: HubConfiguration) async throws {
        let store = ThresholdStore(client: client, logger: logger)
        let name = configuration.defaultProfile
        if name == "custom" {
            try await store.upsertProfile(name: name, base: configuration.baseProfile, settings: configuration.thresholds,
                                          enableEmergencyShutdown: configuration.monitoring.enableEmergencyShutdown)
        }
        let before = try await store.defaultProfile()
        guard try await store.setDefaultProfile(name, by: "configuration \(configuration.profile)") else {
            throw ConfigurationError("the threshold profile '\(name)' is not stored: run `monitor-hub migrate`")
        }
        if before != name {
            logger.notice("fleet default threshold profile: \(before) → \(name) (from \(configuration.profile)); bots without their own profile follow it")
        } else {
            logger.info("fleet default threshold profile: \(name) (from \(configuration.profile))")
        }
    }
}
