/// The version `mserve --version` prints and the web page shows.
public enum MServeVersion {
    public static let string = "0.2.0"
}
