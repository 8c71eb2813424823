// A busy Java program for the JDK's Flight Recorder to record.
// Usage: java Busy SECONDS
import java.util.ArrayList;
import java.util.List;

public class Busy {
    // Only the allocator thread touches it.
    static final List<byte[]> retained = new ArrayList<>();

    static long kilnJavaFib(int n) {
        return n < 2 ? n : kilnJavaFib(n - 1) + kilnJavaFib(n - 2);
    }

    // Allocates steadily but pauses often, so that the computing thread
    // dominates the CPU samples.
    static void kilnJavaAllocate(long deadline) {
        try {
            while (System.currentTimeMillis() < deadline) {
                for (int i = 0; i < 32; i++) {
                    retained.add(new byte[8192]);
                }
                if (retained.size() > 2048) {
                    retained.clear();
                }
                Thread.sleep(1);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public static void main(String[] args) throws Exception {
        long deadline = System.currentTimeMillis() + (long) (Double.parseDouble(args[0]) * 1000);
        Thread allocator = new Thread(() -> kilnJavaAllocate(deadline), "allocator");
        allocator.start();
        long acc = 0;
        while (System.currentTimeMillis() < deadline) {
            acc += kilnJavaFib(24);
        }
        allocator.join();
        System.out.println("done " + acc);
    }
}
