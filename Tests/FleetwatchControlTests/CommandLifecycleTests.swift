import FleetwatchControl
import FleetwatchProtocol
import Testing

@Suite struct CommandLifecycleTests {
    static let statuses: [CommandResultFrame.Status] = [.received, .succeeded, .failed, .skipped, .completed, .refused]
    static let steps: [UInt8] = [0, 1, 2, 4, 8, 16]

    /// Every state × every result × every step: a command never moves back, a final command never moves, and
    /// each state is reached only by the result that means it.
    @Test func everyTransitionMovesForwardOnlyAndOnlyAsMeant() {
        for start in CommandState.allCases {
            for status in Self.statuses {
                for step in Self.steps {
                    var life = CommandLifecycle(state: start)
                    let effects = life.apply(status, step: step)
                    let end = life.state
                    let what = "\(start) + \(status.name) (step \(step)) → \(end)"
                    #expect(end.rank >= start.rank, "\(what): moved back")
                    if start.isFinal { #expect(end == start && effects.isEmpty, "\(what): a final command changed") }
                    if end != start {
                        switch end {
                        case .completed: #expect(status == .completed, "\(what)")
                        case .failed: #expect(status == .failed && step == 0, "\(what)")
                        case .acknowledged: #expect(![.completed, .refused].contains(status) && !(status == .failed && step == 0), "\(what)")
                        case .delivered:
                            // A refusal proves the command reached the bot: a pending one counts as delivered.
                            #expect(status == .refused && start == .pending, "\(what)")
                        case .pending: Issue.record("\(what): a result cannot make a command pending")
                        }
                        #expect(effects.contains(.acknowledged) == (end != .delivered), "\(what): moving past delivered acknowledges")
                        #expect(effects.contains(.completed) == (end == .completed) && effects.contains(.failed) == (end == .failed), "\(what)")
                    } else {
                        #expect(effects.isEmpty, "\(what): no move, no effect")
                    }
                    if status == .refused { #expect(end == start || end == .delivered, "\(what): a refusal leaves the command to be sent again") }
                }
            }
        }
    }

    @Test func aStepThatFailsDoesNotFailTheCommandButItsWholeFailureDoes() {
        var life = CommandLifecycle(state: .delivered)
        #expect(life.apply(.failed, step: 4) == [.acknowledged])   // liquidation failed: the command goes on
        #expect(life.state == .acknowledged)
        #expect(life.apply(.failed, step: 0) == [.acknowledged, .failed])
        #expect(life.state == .failed)
        #expect(life.apply(.completed, step: 0).isEmpty)           // a late "completed" does not undo the failure
        #expect(life.state == .failed)
    }

    @Test func onlyTheFirstDeliveryCounts() {
        var life = CommandLifecycle(state: .pending)
        #expect(life.deliver() == [.firstDelivery])
        #expect(life.state == .delivered)
        #expect(life.deliver().isEmpty)
        for state in [CommandState.acknowledged, .completed, .failed] {
            var other = CommandLifecycle(state: state)
            #expect(other.deliver().isEmpty && other.state == state)
        }
    }

    @Test func finalAndOpenStates() {
        #expect(CommandState.allCases.filter(\.isFinal) == [.completed, .failed])
        #expect(CommandState.open == [.pending, .delivered, .acknowledged])
        #expect(CommandState.completed.rank == CommandState.failed.rank)
    }

    /// The steps a delivery sends, for every set of asked steps.
    @Test func stepsToSend() {
        for raw in UInt8(0)..<32 {
            let asked = CommandFrame.Actions(rawValue: raw)
            for state in CommandState.allCases {
                for granted in [true, false] {
                    let sent = CommandLifecycle.stepsToSend(asked: asked, state: state, liquidationGranted: granted)
                    #expect(sent.isSubset(of: asked), "never more than asked")
                    if state.isFinal {
                        #expect(sent == asked.intersection([.stopTrading, .latchEmergency]), "a finished command only re-latches")
                    } else {
                        #expect(sent.contains(.liquidate) == (asked.contains(.liquidate) && granted), "liquidation only while granted")
                        #expect(sent.subtracting(.liquidate) == asked.subtracting(.liquidate))
                    }
                }
            }
        }
    }
}
