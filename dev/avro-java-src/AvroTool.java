// Reads our Kafka values with the Java Avro library, the reference implementation, so tests can prove that
// what the emitter writes is what the Java ecosystem (Connect, Flink, Spark) reads. Run through dev/avro-java.
//
//   fingerprint SCHEMA_FILE
//       SchemaNormalization.parsingFingerprint64 of the schema, as 16 hex digits in the byte order of the
//       single-object header (little-endian), so it compares directly with bytes 2..9 of a value.
//   canonical SCHEMA_FILE
//       the schema's parsing canonical form.
//   decode --writer-schema FILE [--reader-schema FILE] [--framing auto|single-object|confluent|raw]
//       reads one value per line from stdin as hex, prints one JSON object per line. auto: C3 01 is single
//       object encoding, read by Avro's own BinaryMessageDecoder (which looks the writer schema up by the
//       header's fingerprint, so a fingerprint Java computes differently fails here); 00 is Confluent
//       framing (the schema id is not checked: the caller fetched the writer schema from the registry);
//       anything else is refused.
//       With --reader-schema the value is read through Avro's schema resolution (an old or new reader).
//
// Exit codes: 0 done, 1 a value that cannot be read, 2 a usage mistake. Errors are one line on stderr.

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;

import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;

public final class AvroTool {
    private static final int EXIT_BAD_VALUE = 1;
    private static final int EXIT_USAGE = 2;
    private static final int SINGLE_OBJECT_HEADER = 10;

    private AvroTool() {}

    /** A failure that ends the program with one line and an exit code, never a stack trace. */
    private static final class Failure extends Exception {
        private static final long serialVersionUID = 1L;
        final int code;

        Failure(int code, String message) {
            super(message);
            this.code = code;
        }
    }

    public static void main(String[] args) {
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        try {
            run(args, out);
            out.flush();
        } catch (Failure f) {
            out.flush();
            System.err.println("avro-java: " + f.getMessage());
            System.exit(f.code);
        }
    }

    private static void run(String[] args, PrintStream out) throws Failure {
        if (args.length == 0) {
            throw usage("missing subcommand");
        }
        switch (args[0]) {
            case "fingerprint" -> out.println(fingerprintHex(parse(single(args))));
            case "canonical" -> out.println(SchemaNormalization.toParsingForm(parse(single(args))));
            case "decode" -> decode(args, out);
            default -> throw usage("unknown subcommand " + args[0]);
        }
    }

    private static Failure usage(String why) {
        return new Failure(EXIT_USAGE, why + ": expected fingerprint SCHEMA_FILE | canonical SCHEMA_FILE | "
                + "decode --writer-schema FILE [--reader-schema FILE] [--framing auto|single-object|confluent|raw]");
    }

    private static String single(String[] args) throws Failure {
        if (args.length != 2) {
            throw usage(args[0] + " takes one schema file");
        }
        return args[1];
    }

    private static Schema parse(String path) throws Failure {
        try {
            return new Schema.Parser().parse(new File(path));
        } catch (IOException | AvroRuntimeException e) {
            throw new Failure(EXIT_USAGE, "cannot read schema " + path + ": " + e.getMessage());
        }
    }

    /** The single-object header stores the 64-bit fingerprint little-endian. */
    static String fingerprintHex(Schema schema) {
        long fp = SchemaNormalization.parsingFingerprint64(schema);
        byte[] le = new byte[8];
        for (int i = 0; i < 8; i++) {
            le[i] = (byte) (fp >>> (8 * i));
        }
        return HexFormat.of().formatHex(le);
    }

    private static void decode(String[] args, PrintStream out) throws Failure {
        String writerPath = null;
        String readerPath = null;
        String framing = "auto";
        for (int i = 1; i < args.length; i++) {
            if (i + 1 >= args.length) {
                throw usage(args[i] + " needs a value");
            }
            switch (args[i]) {
                case "--writer-schema" -> writerPath = args[++i];
                case "--reader-schema" -> readerPath = args[++i];
                case "--framing" -> framing = args[++i];
                default -> throw usage("unknown option " + args[i]);
            }
        }
        if (writerPath == null) {
            throw usage("decode needs --writer-schema");
        }
        if (!framing.matches("auto|single-object|confluent|raw")) {
            throw usage("unknown framing " + framing);
        }
        Schema writer = parse(writerPath);
        Schema reader = readerPath == null ? writer : parse(readerPath);
        GenericDatumReader<Object> datumReader = new GenericDatumReader<>(writer, reader, GenericData.get());
        BinaryMessageDecoder<Object> messageDecoder = new BinaryMessageDecoder<>(GenericData.get(), reader);
        messageDecoder.addSchema(writer);
        String expected = fingerprintHex(writer);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        BinaryDecoder decoder = null;
        int lineNo = 0;
        try {
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                lineNo++;
                if (line.isBlank()) {
                    continue;
                }
                byte[] value = hex(line.strip(), lineNo);
                int offset = bodyOffset(value, framing, expected, lineNo);
                Object datum;
                if (offset == SINGLE_OBJECT_HEADER) {
                    datum = messageDecoder.decode(value);
                } else {
                    decoder = DecoderFactory.get().binaryDecoder(value, offset, value.length - offset, decoder);
                    datum = datumReader.read(null, decoder);
                    if (!decoder.isEnd()) {
                        throw new Failure(EXIT_BAD_VALUE, "line " + lineNo + ": bytes left after the record");
                    }
                }
                // GenericData's toString is JSON: records and maps as objects, unions unwrapped.
                out.println(GenericData.get().toString(datum));
            }
        } catch (IOException | AvroRuntimeException e) {
            throw new Failure(EXIT_BAD_VALUE, "line " + lineNo + ": not a record of " + writerPath + ": " + e);
        }
    }

    private static byte[] hex(String text, int lineNo) throws Failure {
        try {
            return HexFormat.of().parseHex(text);
        } catch (IllegalArgumentException e) {
            throw new Failure(EXIT_BAD_VALUE, "line " + lineNo + ": not hex: " + e.getMessage());
        }
    }

    private static int bodyOffset(byte[] value, String framing, String expected, int lineNo) throws Failure {
        boolean singleObject = value.length >= 10 && (value[0] & 0xff) == 0xc3 && value[1] == 0x01;
        boolean confluent = value.length >= 5 && value[0] == 0;
        String kind = framing.equals("auto") ? (singleObject ? "single-object" : confluent ? "confluent" : "") : framing;
        switch (kind) {
            case "single-object" -> {
                if (!singleObject) {
                    throw new Failure(EXIT_BAD_VALUE, "line " + lineNo + ": no single-object header (C3 01)");
                }
                String found = HexFormat.of().formatHex(value, 2, 10);
                if (!found.equals(expected)) {
                    throw new Failure(EXIT_BAD_VALUE, "line " + lineNo + ": fingerprint " + found
                            + " is not the writer schema's " + expected);
                }
                return SINGLE_OBJECT_HEADER;
            }
            case "confluent" -> {
                if (!confluent) {
                    throw new Failure(EXIT_BAD_VALUE, "line " + lineNo + ": no Confluent header (00 + schema id)");
                }
                return 5;
            }
            case "raw" -> {
                return 0;
            }
            default -> throw new Failure(EXIT_BAD_VALUE,
                    "line " + lineNo + ": neither single-object (C3 01) nor Confluent (00) framing");
        }
    }
}
