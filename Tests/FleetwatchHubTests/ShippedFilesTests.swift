@testable import FleetwatchHub
import FleetwatchStorage
import Foundation
import Testing

/// Shipped files and parsers checked without a database or a process: the images install what the hub reads at
/// run time, and the migration splitter keeps function bodies whole.
struct ShippedFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// No Docker engine runs here: the image recipes are checked for what the hub needs at run time, and
    /// scripts/topology runs the same layout natively.
    @Test func theImagesInstallWhatTheHubReadsAtRunTime() throws {
        let hub = try String(contentsOfFile: "\(Self.root)/Hub/Dockerfile", encoding: .utf8)
        let runtime = try #require(hub.components(separatedBy: "\nFROM ").last)
        // Chart.js (served at /assets/chart.min.js from dashboard.chartjs_path), CA certificates (TLS to PostgreSQL,
        // SMTP, webhooks, Alertmanager), zlib, curl for the health check; the data directory for the break-glass journal.
        let configured = HubConfiguration().dashboard.chartJSPath
        #expect(configured == "/usr/share/javascript/chart.js/chart.min.js")
        for needed in ["libjs-chart.js", "ca-certificates", "zlib1g", "curl", "tzdata", "USER fleetwatch", "HEALTHCHECK", "/health/ready",
                       "STOPSIGNAL SIGTERM", "FLEETWATCH_DATA_DIR=", "org.opencontainers.image.title", "org.opencontainers.image.version",
                       "org.opencontainers.image.source", "org.opencontainers.image.licenses", "org.opencontainers.image.description"] {
            #expect(runtime.contains(needed), "the hub's runtime stage lacks \(needed)")
        }
        let build = hub.components(separatedBy: "\nFROM ").dropLast().joined(separator: "\nFROM ")
        // The dependencies resolve in a layer of their own, before the sources are copied.
        let resolve = try #require(build.range(of: "swift package resolve")), sources = try #require(build.range(of: "COPY . ."))
        let manifest = try #require(build.range(of: "COPY Package."))
        #expect(manifest.lowerBound < resolve.lowerBound && resolve.lowerBound < sources.lowerBound)
        let agent = try String(contentsOfFile: "\(Self.root)/Agent/Dockerfile", encoding: .utf8)
        #expect(agent.contains("org.opencontainers.image.title") && agent.contains("USER "))
        // The build context leaves out builds, data (a password lives there) and secrets, and keeps every target.
        let ignore = try String(contentsOfFile: "\(Self.root)/.dockerignore", encoding: .utf8).split(separator: "\n").map(String.init)
        for excluded in [".build", "fleetwatch-data", "fleetwatch-topology", "secrets", ".test-artifacts", ".git"] {
            #expect(ignore.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix(excluded) || $0.contains("/\(excluded)") }, "\(excluded) not ignored")
        }
        for kept in ["Sources", "Tests", "Hub", "Agent", "Fuzz", "Faults", "Benchmarks", "schema", "Package.swift"] {
            #expect(!ignore.contains(kept) && !ignore.contains(kept + "/"), "\(kept) ignored")
            #expect(FileManager.default.fileExists(atPath: "\(Self.root)/\(kept)"), "\(kept) missing from the repository")
        }
    }

    @Test func sqlSplitterKeepsFunctionBodiesWhole() {
        let parts = SQLSplitter.split("""
            CREATE TABLE a (x text DEFAULT ';'); -- a comment; with a semicolon
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
            /* block; comment */ SELECT 'it''s; fine';
            """)
        #expect(parts.count == 3)
        #expect(parts[1].hasSuffix("END $$"))
    }
}
