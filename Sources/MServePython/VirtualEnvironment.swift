import MServe

/// A Python virtual environment (`--python-venv DIR`, else $VIRTUAL_ENV): its packages go first on
/// the embedded interpreter's sys.path.  Its Python must be the embedded one's major.minor, since
/// compiled packages (numpy, torch) are built for one version.
struct VirtualEnvironment: Equatable {
    let directory: String
    /// "3.11.2", as `version` (venv) or `version_info` (virtualenv, uv) in pyvenv.cfg gives it.
    let version: String
    /// Whether the system's site-packages stay visible (`include-system-site-packages = true`).
    let includesSystemPackages: Bool

    /// Reads `pyvenv.cfg`'s `key = value` lines; nil when the version is missing.
    init?(directory: String, config: String) {
        var values: [String: String] = [:]
        for line in config.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            values[parts[0].trimmingSpaces().lowercased()] = parts[1].trimmingSpaces()
        }
        guard let version = values["version"] ?? values["version_info"], !version.isEmpty else { return nil }
        self.directory = directory
        self.version = version
        includesSystemPackages = values["include-system-site-packages"]?.lowercased() == "true"
    }

    /// "3.11" of "3.11.2" (or of "3.11.2.final.0").
    var majorMinor: String { version.split(separator: ".").prefix(2).joined(separator: ".") }

    /// Where its packages are, for a Python of version `majorMinor`.
    func sitePackages(for majorMinor: String) -> String { "\(directory)/lib/python\(majorMinor)/site-packages" }

    /// The environment in `directory`, checked against the embedded Python's version.
    static func open(_ directory: String, embedded: String) throws -> VirtualEnvironment {
        let config: String
        do { config = try FileReading.text("\(directory)/pyvenv.cfg") } catch {
            throw ModelLoadError("python venv \(directory) is not a virtual environment (no pyvenv.cfg: \(error))")
        }
        guard let venv = VirtualEnvironment(directory: directory, config: config) else {
            throw ModelLoadError("python venv \(directory): pyvenv.cfg gives no version")
        }
        guard venv.majorMinor == embedded else {
            throw ModelLoadError(
                "python venv \(directory) is Python \(venv.version), and mserve embeds Python \(embedded): "
                    + "make the venv with python\(embedded) -m venv (its compiled packages must match)")
        }
        return venv
    }
}
