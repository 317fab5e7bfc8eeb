@testable import FleetwatchHub
import Foundation
import Testing

@Suite struct LiveConnectionsHolderTests {
    /// Holders read from the database fill in what no notification said; a holder a notification named stays
    /// (the notification may be newer than the read).
    @Test func holdersReadFromTheDatabaseDoNotOverrideNotifications() async {
        let connections = LiveConnections()
        await connections.replaced(bot: "moved", by: UUID(), hub: "hub-new")
        await connections.learnHolders(["moved": "hub-old", "quiet": "hub-a"])
        #expect(await connections.lastKnownHolder(of: "moved") == "hub-new")
        #expect(await connections.lastKnownHolder(of: "quiet") == "hub-a")
        #expect(await connections.lastKnownHolder(of: "unknown") == nil)
    }
}
