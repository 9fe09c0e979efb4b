#pragma once
// Reads an HTML document written as well-formed XML (the diag report) into a small element tree
// for structure checks: Boost.PropertyTree's XML reader (rapidxml) throws on anything that is not
// well-formed, so parsing is itself the first check.
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>

namespace substrate::testing {

struct HtmlElement {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::string own_text;  // the element's text pieces, without its children's
  std::vector<HtmlElement> children;

  std::string attribute(const std::string& key) const {
    const auto it = attributes.find(key);
    return it == attributes.end() ? std::string() : it->second;
  }
  // Own text, then the children's, depth first (entities decoded).
  std::string text() const {
    std::string out = own_text;
    for (const HtmlElement& child : children) out += child.text();
    return out;
  }
  // Every element below this one named `tag` whose class list has `css_class` (any when empty).
  std::vector<const HtmlElement*> find_all(const std::string& tag, const std::string& css_class = "") const {
    std::vector<const HtmlElement*> found;
    for (const HtmlElement& child : children) {
      std::istringstream classes(child.attribute("class"));
      bool match = css_class.empty();
      for (std::string c; !match && classes >> c;) match = c == css_class;
      if (child.name == tag && match) found.push_back(&child);
      for (const HtmlElement* below : child.find_all(tag, css_class)) found.push_back(below);
    }
    return found;
  }
};

inline HtmlElement html_element(const std::string& name, const boost::property_tree::ptree& tree) {
  HtmlElement element{name, {}, tree.data(), {}};
  for (const auto& [key, child] : tree) {
    if (key == "<xmlattr>") {
      for (const auto& [attribute, value] : child) element.attributes[attribute] = value.data();
    } else if (key != "<xmlcomment>") {
      element.children.push_back(html_element(key, child));
    }
  }
  return element;
}

// The document's root (a pseudo-element whose one child is <html>); throws
// boost::property_tree::xml_parser_error when the text is not well-formed.
inline HtmlElement parse_html(const std::string& html) {
  std::istringstream in(html);
  boost::property_tree::ptree tree;
  boost::property_tree::read_xml(in, tree);
  return html_element("", tree);
}

}  // namespace substrate::testing
