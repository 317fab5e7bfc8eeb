/// The version of fleetwatch's programs (`--version`, `fleetwatch_build_info`).
public enum FleetwatchVersion {
    public static let current = "0.1.0"
}
