import Testing
@testable import UrunUserNS

@Suite struct IDMapTests {
    @Test func singleMappingText() {
        let map = IDMap.single(hostUID: 1000, hostGID: 100)
        #expect(IDMap.text(map.uids) == "0 1000 1\n")
        #expect(IDMap.text(map.gids) == "0 100 1\n")
        #expect(map.isWritableByCaller(uid: 1000, gid: 100))
        #expect(!map.isWritableByCaller(uid: 1001, gid: 100))
    }

    @Test func userOtherThanRootMapsToTheCaller() {
        let map = IDMap.single(hostUID: 1000, hostGID: 100, uid: 33, gid: 44)
        #expect(map.hostUID(for: 33) == 1000)
        #expect(map.hostUID(for: 0) == nil)
        #expect(map.hostGID(for: 44) == 100)
    }

    @Test func subordinateRangesAreNotWritableByTheCaller() {
        let map = IDMap(
            uids: [IDRange(inside: 0, outside: 1000, count: 1), IDRange(inside: 1, outside: 100_000, count: 65536)],
            gids: [IDRange(inside: 0, outside: 1000, count: 1)])
        #expect(!map.isWritableByCaller(uid: 1000, gid: 1000))
        #expect(map.hostUID(for: 1) == 100_000)
        #expect(map.hostUID(for: 65536) == 165_535)
        #expect(map.hostUID(for: 65537) == nil)
        #expect(IDMap.text(map.uids) == "0 1000 1\n1 100000 65536\n")
    }

    /// /etc/subuid is read as numbers that may overflow: such lines are
    /// dropped, and the ids inside never pass 2^32 - 2.
    @Test func subordinateRangesNeverOverflow() {
        let subuid = "u:4294967000:1000\nu:100000:65536\nu:1:4294901760\nu:x:1\n"
        let ids = SubordinateIDs.parse(subuid: subuid, subgid: "u:100000:65536\n", name: "u", uid: 1000)
        #expect(ids?.uids.map(\.start) == [100_000, 1], "a range that passes 2^32 on the host is dropped")
        let map = IDMap.subordinate(hostUID: 1000, hostGID: 1000, ids!)
        #expect(map.uids.count == 2, "the range that would pass 2^32 - 1 is left out")
        #expect(map.hostUID(for: 65536) == 165_535)
        #expect(map.mapsHostUID(1000) && map.mapsHostUID(100_000) && !map.mapsHostUID(99_999))
    }

    @Test func namespaceFlagNames() {
        let names = ([.user, .pid, .network] as Namespaces).flagNames
        #expect(names == "CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET")
    }
}

@Suite struct KeepIDMapTests {
    let ranges = [SubordinateIDs.Range(start: 100_000, count: 65_536)]

    @Test func theCallerKeepsItsNumber() throws {
        let lines = try #require(IDMap.keepingID(1001, inside: 1001, ranges))
        #expect(IDMap.text(lines) == "0 100000 1001\n1001 1001 1\n1002 101001 64535\n")
    }

    @Test func aChosenNumberAndSeveralRanges() throws {
        let two = [SubordinateIDs.Range(start: 200_000, count: 10), SubordinateIDs.Range(start: 300_000, count: 100)]
        let lines = try #require(IDMap.keepingID(1001, inside: 20, two))
        #expect(IDMap.text(lines) == "0 200000 10\n10 300000 10\n20 1001 1\n21 300010 90\n")
        let map = IDMap(uids: lines, gids: lines)
        #expect(map.hostUID(for: 20) == 1001 && map.hostUID(for: 0) == 200_000 && map.hostUID(for: 110) == 300_099)
    }

    @Test func rangesTooSmallForTheNumber() {
        #expect(IDMap.keepingID(1001, inside: 70_000, ranges) == nil)
        // Exactly as many ids as the number: it comes right after them.
        #expect(IDMap.keepingID(1001, inside: 65_536, ranges).map(IDMap.text) == "0 100000 65536\n65536 1001 1\n")
    }
}
