import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Failures of the environment, not of the input: each must name its cause.
@Suite(harnessAvailable) struct EnvironmentFailureTests {
    let h = Harness.shared

    @Test func exhaustedUserNamespacesNameTheSysctl() {
        // A throwaway user namespace whose own limit is 0: urun's clone fails
        // there exactly as on a host where user.max_user_namespaces is 0.
        let result = h.runAsUser([
            "unshare", "--user", "--map-root-user", "sh", "-c",
            "echo 0 > /proc/sys/user/max_user_namespaces && exec \(h.binary) \(h.image()) true",
        ], environment: ["URUN_ROOT": h.freshRoot()])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.contains("user.max_user_namespaces"), "\(result)")
    }

    /// The image belongs to root, mode 600: unreadable to the test user.
    @Test(.requiring(Harness.shared.user != nil, "an image unreadable to urun's user needs another owner: run the tests as root, as CI does"))
    func unreadableImageIsAClearError() {
        let image = h.workspace + "/unreadable-\(getpid()).tar"
        Harness.sh("cp \(h.image()) \(image) && chmod 600 \(image)")
        defer { unlink(image) }
        let result = h.urun([image, "true"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.contains("permission denied"), "\(result)")
    }
}
