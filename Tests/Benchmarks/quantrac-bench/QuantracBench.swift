import ArgumentParser

/// Benchmarks that need Quantrac's own code in-process (the rest of `make bench` drives the shipped
/// binaries). Each subcommand prints its raw figures; `Tests/Benchmarks/run.sh` builds the ratio table.
@main
struct QuantracBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantrac-bench",
        abstract: "In-process benchmarks of Quantrac (run through `make bench`).",
        subcommands: [AcquisitionBench.self, BacklogBench.self, AveragesBench.self])
}
