#include <iostream>
#include <string>
#include <vector>
int main() {
    int q;
    std::cin >> q;
    std::string line;
    std::getline(std::cin, line);
    for (int i = 0; i < q; i++) {
        std::getline(std::cin, line);
        std::vector<char> stack;
        bool ok = true;
        for (char c : line) {
            if (c == '(' || c == '[' || c == '{') {
                stack.push_back(c);
            } else if (c == ')' || c == ']' || c == '}') {
                char want = c == ')' ? '(' : c == ']' ? '[' : '{';
                if (stack.empty() || stack.back() != want) { ok = false; break; }
                stack.pop_back();
            }
        }
        std::cout << (ok && stack.empty() ? "YES" : "NO") << "\n";
    }
}
