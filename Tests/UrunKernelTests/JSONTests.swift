import Testing
import UrunKernel

@Suite struct JSONTests {
    @Test func parsesNestedDocument() throws {
        let json = try JSON(parsing: #"{"a": [1, -2.5e3, true, null, "x\n\u00e9\ud83d\ude00"], "b": {"c": "d"}}"#)
        #expect(json["a"]?.array?.count == 5)
        #expect(json["a"]?.array?[0].int == 1)
        #expect(json["a"]?.array?[1].double == -2500)
        #expect(json["a"]?.array?[2].bool == true)
        #expect(json["a"]?.array?[3].isNull == true)
        #expect(json["a"]?.array?[4].string == "x\né😀")
        #expect(json["b"]?["c"]?.string == "d")
    }

    @Test func roundTripsKeepingOrderAndBigIntegers() throws {
        let text = #"{"z":1,"a":[18446744073709551615,"q\"uote\\"],"m":{}}"#
        let json = try JSON(parsing: text)
        #expect(json.serialized() == text)
        #expect(json["a"]?.array?[0].uint64 == UInt64.max)
        #expect(try JSON(parsing: json.pretty()) == json)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"\u{01}\"", "01x", "[1] 2", "\"\\x\""])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSON.ParseError.self) { try JSON(parsing: text) }
    }

    @Test func reportsTheOffsetOfAnError() {
        do {
            _ = try JSON(parsing: "{\"a\": [1, 2,, 3]}")
            Issue.record("parsed a malformed document")
        } catch {
            #expect(error.offset == 12)
        }
    }

    @Test func subscriptSetReplacesAndAppends() {
        var json = JSON.object([("a", .int(1))])
        json["a"] = .string("x")
        json["b"] = .bool(false)
        #expect(json.serialized() == #"{"a":"x","b":false}"#)
        json["a"] = nil
        #expect(json.serialized() == #"{"b":false}"#)
    }
}
